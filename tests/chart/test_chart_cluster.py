"""The chart on the real loopback cluster: install --wait, upgrade, helm test, uninstall, and the
real operator reconciling under the chart's RBAC. kwok fakes the pods (Running/Ready), so no
container of the chart runs here: the hook pod's script is tested in test_chart_hook.py."""

from __future__ import annotations

import base64
import json
import os
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from detectflow.cli.up import free_port
from tests.chart.conftest import CHART, Helm, find
from tests.support.cluster import ClusterInfo, install_keda_crds, wait_for
from tests.support.processes import Proc

pytestmark = [pytest.mark.cluster, pytest.mark.timeout(420)]

#: Namespaced kinds a release may leave behind, checked after `helm uninstall`.
NAMESPACED_KINDS = (
    "pods,jobs,services,deployments,replicasets,statefulsets,persistentvolumeclaims,secrets,configmaps,"
    "serviceaccounts,roles,rolebindings,detectionpipelines.detectflow.io,scaledobjects.keda.sh,"
    "triggerauthentications.keda.sh"
)


def _items(cluster: ClusterInfo, *args: str) -> list[dict[str, Any]]:
    return cluster.kubectl_json("get", *args)["items"]


def _leftovers(cluster: ClusterInfo, namespace: str, release: str) -> list[str]:
    """Every object of the release (by label or by Helm's release Secret) still in the cluster."""
    left = []
    for selector in (f"app.kubernetes.io/instance={release}", f"owner=helm,name={release}"):
        for item in _items(cluster, "-n", namespace, NAMESPACED_KINDS, "-l", selector):
            left.append(f"{item['kind']}/{item['metadata']['name']}")
        for item in _items(cluster, "clusterroles,clusterrolebindings", "-l", selector):
            left.append(f"{item['kind']}/{item['metadata']['name']}")
    return sorted(set(left))


@pytest.fixture
def keda_crds(cluster: ClusterInfo) -> ClusterInfo:
    install_keda_crds(cluster)
    return cluster


def _release() -> str:
    return f"dfc{uuid.uuid4().hex[:6]}"


def test_chart_install_upgrade_test_uninstall_leaves_nothing(
    keda_crds: ClusterInfo, cluster_helm: Helm, namespace: str, volume
) -> None:
    cluster = keda_crds
    # Given a StorageClass name with a volume for the Redis claim, and a fresh release name
    storage_class = volume()
    release = _release()
    sets = f"redis.enabled=true,redis.persistence.storageClass={storage_class},pipeline.create=true"

    # When installed with --wait
    t0 = time.monotonic()
    out = cluster_helm("install", release, str(CHART), "-n", namespace, "--set", sets, "--wait", "--timeout", "120s")
    install_s = time.monotonic() - t0

    # Then the operator and Redis are ready, the claim bound, the sample pipeline created
    full = f"{release}-detectflow"
    deploy = cluster.kubectl_json("-n", namespace, "get", "deployment", f"{full}-operator")
    assert deploy["status"]["readyReplicas"] == 1 and deploy["spec"]["strategy"]["type"] == "Recreate"
    sts = cluster.kubectl_json("-n", namespace, "get", "statefulset", f"{full}-redis")
    assert sts["status"]["readyReplicas"] == 1
    (pvc,) = _items(cluster, "-n", namespace, "pvc", "-l", f"app.kubernetes.io/instance={release}")
    assert pvc["status"]["phase"] == "Bound" and pvc["spec"]["storageClassName"] == storage_class
    dp = cluster.kubectl_json("-n", namespace, "get", "dp", release)
    assert dp["spec"]["redis"]["address"] == f"{full}-redis.{namespace}.svc:6379"
    password = cluster.kubectl_json("-n", namespace, "get", "secret", f"{full}-redis")["data"]["password"]
    admin_key = cluster.kubectl_json("-n", namespace, "get", "secret", f"{full}-admin-key")["data"]["admin-key"]
    assert base64.b64decode(admin_key).decode().startswith("dfk_")
    assert dp["spec"]["api"]["auth"]["adminKeySecretRef"] == {"name": f"{full}-admin-key", "key": "admin-key"}
    # NOTES tell the next commands
    notes = out.stdout.split("NOTES:", 1)[1]
    for expected in (
        f"kubectl -n {namespace} rollout status deployment/{full}-operator",
        "kubectl get crd scaledobjects.keda.sh",
        f"kubectl -n {namespace} get dp {release}",
        'curl -s -H "Authorization: Bearer $DETECTFLOW_API_KEY" -F task=face -F file=@photo.jpg',
        f"kubectl -n {namespace} get secret {full}-admin-key",
        f"helm test {release} -n {namespace}",
    ):
        assert expected in notes
    print(f"helm install --wait: {install_s:.1f} s")

    # When upgraded with a changed value
    cluster_helm("upgrade", release, str(CHART), "-n", namespace, "--reuse-values",
                 "--set", "operator.resyncSeconds=30", "--wait", "--timeout", "120s")  # fmt: skip

    # Then the operator pod carries the new flag, the generated Redis password is kept
    def rolled() -> bool:
        d = cluster.kubectl_json("-n", namespace, "get", "deployment", f"{full}-operator")
        args = d["spec"]["template"]["spec"]["containers"][0]["args"]
        return "--resync-seconds=30" in args and d["status"].get("readyReplicas") == 1

    wait_for(rolled, timeout=60, what="the upgraded operator")
    assert cluster.kubectl_json("-n", namespace, "get", "secret", f"{full}-redis")["data"]["password"] == password
    assert cluster.kubectl_json("-n", namespace, "get", "secret", f"{full}-admin-key")["data"]["admin-key"] == admin_key
    history = json.loads(cluster_helm("history", release, "-n", namespace, "-o", "json").stdout)
    assert [h["revision"] for h in history] == [1, 2] and history[-1]["status"] == "deployed"

    # When `helm test` runs: kwok reports the hook pod Running but runs no container, so the
    # test stands in for the container's exit 0 by marking the pod Succeeded, as a kubelet would.
    result: dict[str, Any] = {}
    runner = threading.Thread(
        target=lambda: result.update(proc=cluster_helm("test", release, "-n", namespace, "--timeout", "90s", check=False))
    )
    runner.start()
    hook = f"{full}-test-connection"
    pod = wait_for(
        lambda: (p := cluster.kubectl_json("-n", namespace, "get", "pod", hook))["status"].get("phase") == "Running" and p,
        timeout=60, what="the helm test pod Running",
    )  # fmt: skip
    assert pod["metadata"]["annotations"]["helm.sh/hook"] == "test"
    assert pod["spec"]["containers"][0]["command"][:2] == ["python3", "-c"]
    cluster.kubectl("-n", namespace, "patch", "pod", hook, "--subresource=status", "--type=merge",
                    "-p", '{"status":{"phase":"Succeeded"}}')  # fmt: skip
    runner.join(120)

    # Then helm reports the suite passed and its delete policy removed the pod
    assert result["proc"].returncode == 0, result["proc"].stderr
    assert "Phase:          Succeeded" in result["proc"].stdout
    wait_for(lambda: not _items(cluster, "-n", namespace, "pods", "--field-selector", f"metadata.name={hook}"),
             timeout=30, what="the hook pod deleted")  # fmt: skip

    # When uninstalled
    cluster_helm("uninstall", release, "-n", namespace, "--wait", "--timeout", "120s")

    # Then no object of the release remains (the claim goes with the StatefulSet: whenDeleted
    # Delete; the CRD stays, as Helm never deletes crds/).
    try:
        wait_for(lambda: not _leftovers(cluster, namespace, release), timeout=60, what="nothing left")
    except TimeoutError:
        pytest.fail(f"left after uninstall: {_leftovers(cluster, namespace, release)}")
    assert cluster.kubectl_json("get", "pv", storage_class)["status"]["phase"] == "Released"
    cluster.kubectl("get", "crd", "detectionpipelines.detectflow.io")


# --- the real operator under the chart's RBAC ---------------------------------------------------


def _token_kubeconfig(cluster: ClusterInfo, namespace: str, sa: str, path: Path) -> Path:
    """A kubeconfig authenticating as ServiceAccount ``sa`` with a real token."""
    token = cluster.kubectl("-n", namespace, "create", "token", sa, "--duration=1h").stdout.strip()
    admin = yaml.safe_load(Path(cluster.kubeconfig).read_text())
    ca = admin["clusters"][0]["cluster"]
    ca_data = ca.get("certificate-authority-data") or base64.b64encode(
        Path(ca["certificate-authority"]).read_bytes()
    ).decode()
    path.write_text(
        yaml.safe_dump(
            {
                "apiVersion": "v1",
                "kind": "Config",
                "clusters": [{"name": "c", "cluster": {"server": cluster.apiserver_url,
                                                      "certificate-authority-data": ca_data}}],
                "users": [{"name": sa, "user": {"token": token}}],
                "contexts": [{"name": "c", "context": {"cluster": "c", "user": sa}}],
                "current-context": "c",
            }
        )
    )  # fmt: skip
    return path


@pytest.fixture
def operator_proc(tmp_path: Path) -> Iterator[list[Proc]]:
    procs: list[Proc] = []
    yield procs
    for p in procs:
        p.stop(timeout=20)


def test_chart_rbac_lets_the_real_operator_reconcile_the_sample_pipeline(
    keda_crds: ClusterInfo, cluster_helm: Helm, namespace: str, tmp_path: Path, operator_proc: list[Proc]
) -> None:
    cluster = keda_crds
    release = _release()
    full = f"{release}-detectflow"
    # Given the chart installed with a namespaced operator (Role) and the sample pipeline
    sets = (f"operator.watchNamespaces={{{namespace}}},redis.enabled=true,redis.persistence.enabled=false,"
            "pipeline.create=true")  # fmt: skip
    cluster_helm("install", release, str(CHART), "-n", namespace, "--set", sets, "--wait", "--timeout", "120s")
    deploy = cluster.kubectl_json("-n", namespace, "get", "deployment", f"{full}-operator")
    args = deploy["spec"]["template"]["spec"]["containers"][0]["args"]

    # When the real `detectflow operator` runs here with the chart's args, as the chart's
    # ServiceAccount (a real token: only the chart's Role applies), liveness on a free port
    kubeconfig = _token_kubeconfig(cluster, namespace, f"{full}-operator", tmp_path / "sa.kubeconfig")
    port = free_port()
    args = [a if not a.startswith("--liveness=") else f"--liveness=http://127.0.0.1:{port}/healthz" for a in args]
    args = [a if not a.startswith("--resync-seconds=") else "--resync-seconds=2" for a in args]
    env = {k: v for k, v in os.environ.items() if not k.startswith("DETECTFLOW_")}
    env["KUBECONFIG"] = str(kubeconfig)
    log = tmp_path / "operator.log"
    operator_proc.append(Proc(["operator", *args], env, log))

    # Then it creates every child of the pipeline: nothing it needs is forbidden
    def children() -> bool:
        names = {
            f"{i['kind']}/{i['metadata']['name']}"
            for i in _items(cluster, "-n", namespace, "deployments,services,serviceaccounts,scaledobjects.keda.sh,"
                            "triggerauthentications.keda.sh", "-l", f"detectflow.io/pipeline={release}")
        }  # fmt: skip
        return {
            f"Deployment/{release}-api", f"Deployment/{release}-faces", f"Service/{release}-api",
            f"ServiceAccount/{release}-api", f"ServiceAccount/{release}-worker",
            f"ScaledObject/{release}-faces", f"TriggerAuthentication/{release}-redis",
        } <= names  # fmt: skip

    try:
        wait_for(children, timeout=90, what="the pipeline's children")
        wait_for(lambda: httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=2).status_code == 200,
                 timeout=30, what="kopf's liveness endpoint")  # fmt: skip
        dp = wait_for(
            lambda: (d := cluster.kubectl_json("-n", namespace, "get", "dp", release)).get("status", {}).get("conditions") and d,
            timeout=60, what="the pipeline's status",
        )  # fmt: skip
    except TimeoutError as exc:
        pytest.fail(f"{exc}\n--- operator log ---\n{log.read_text(errors='replace')[-5000:]}")
    text = log.read_text(errors="replace")
    assert "403" not in text and "Forbidden" not in text, text[-5000:]
    scaled = cluster.kubectl_json("-n", namespace, "get", "scaledobject", f"{release}-faces")
    assert scaled["spec"]["minReplicaCount"] == 0
    assert scaled["spec"]["triggers"][0]["authenticationRef"] == {"name": f"{release}-redis"}
    assert {c["type"] for c in dp["status"]["conditions"]} >= {"Ready"}

    # When the release is uninstalled: first its pre-delete hook deletes the pipeline while the
    # operator still runs (kopf holds a finalizer, detectflow.io/operator, and removes it when it
    # sees the deletion). kwok completes the hook Job without running it, so the test runs the
    # hook's own script here, then `helm uninstall`.
    (job,) = find(
        cluster_helm.template("pipeline.create=true", "redis.enabled=true", namespace=namespace, release=release),
        "Job",
    )
    container = job["spec"]["template"]["spec"]["containers"][0]
    hook_env = {**os.environ, "KUBECONFIG": str(cluster.kubeconfig),
                **{e["name"]: e["value"] for e in container["env"]}}  # fmt: skip
    t0 = time.monotonic()
    subprocess.run([sys.executable, *container["command"][1:]], env=hook_env, check=True, timeout=150)
    print(f"pre-delete hook: pipeline deleted in {time.monotonic() - t0:.1f} s")
    cluster_helm("uninstall", release, "-n", namespace, "--wait", "--timeout", "120s")

    # Then the pipeline's children go with it (garbage collection through ownerReferences)
    def nothing_left() -> bool:
        return not _leftovers(cluster, namespace, release) and not _items(
            cluster, "-n", namespace, NAMESPACED_KINDS, "-l", f"detectflow.io/pipeline={release}"
        )

    try:
        wait_for(nothing_left, timeout=90, what="nothing left")
    except TimeoutError:
        pytest.fail(f"left after uninstall: {_leftovers(cluster, namespace, release)}")
    operator_proc.pop().stop(timeout=20)
