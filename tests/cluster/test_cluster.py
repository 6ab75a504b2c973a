"""Tests of the loopback Kubernetes cluster itself (scripts/cluster/up.sh), against the real thing.

Slow the first time on a fresh machine: the binaries are built from Go modules (see
docs/development.md). Reuses a cluster started by `make cluster-up`.
"""

from __future__ import annotations

import json
import subprocess
import uuid

import pytest

from tests.support.cluster import ClusterInfo, ensure_cluster, stop_cluster, wait_for

pytestmark = pytest.mark.cluster


@pytest.fixture(scope="module")
def cluster() -> ClusterInfo:
    info = ensure_cluster()
    yield info
    stop_cluster()  # only if this process started it


@pytest.fixture()
def namespace(cluster: ClusterInfo) -> str:
    name = f"t-{uuid.uuid4().hex[:8]}"
    cluster.kubectl("create", "namespace", name)
    # Pods need the namespace's default ServiceAccount (created by the controller-manager).
    wait_for(
        lambda: cluster.kubectl("-n", name, "get", "serviceaccount", "default", check=False).returncode == 0,
        timeout=30, what="default ServiceAccount",
    )
    yield name
    cluster.kubectl("delete", "namespace", name, "--wait=false", check=False)


def test_version_is_injected(cluster: ClusterInfo) -> None:
    version = json.loads(cluster.kubectl("get", "--raw=/version").stdout)
    assert version["gitVersion"] == "v1.36.3"
    assert (version["major"], version["minor"]) == ("1", "36")


def test_nodes_ready_and_gpu_node(cluster: ClusterInfo) -> None:
    nodes = {n["metadata"]["name"]: n for n in cluster.kubectl_json("get", "nodes")["items"]}
    assert {"kwok-node-0", "kwok-gpu-0"} <= nodes.keys()
    for node in nodes.values():
        ready = [c for c in node["status"]["conditions"] if c["type"] == "Ready"]
        assert ready and ready[0]["status"] == "True", node["metadata"]["name"]
    gpu = nodes["kwok-gpu-0"]
    assert gpu["status"]["allocatable"]["nvidia.com/gpu"] == "2"
    assert {"key": "nvidia.com/gpu", "value": "present", "effect": "NoSchedule"} in gpu["spec"]["taints"]


def _deployment(name: str, replicas: int) -> str:
    return json.dumps({
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": {"app": name}},
            "template": {
                "metadata": {"labels": {"app": name}},
                "spec": {"containers": [{"name": "c", "image": "example.invalid/fake:1"}]},
            },
        },
    })


def test_deployment_reaches_ready_replicas(cluster: ClusterInfo, namespace: str) -> None:
    cluster.kubectl("-n", namespace, "apply", "-f", "-", input=_deployment("web", 3))

    def ready() -> bool:
        dep = cluster.kubectl_json("-n", namespace, "get", "deployment", "web")
        return dep.get("status", {}).get("readyReplicas") == 3

    wait_for(ready, timeout=90, what="readyReplicas == 3")
    pods = cluster.kubectl_json("-n", namespace, "get", "pods", "-l", "app=web")["items"]
    assert len(pods) == 3
    assert all(p["status"]["phase"] == "Running" for p in pods)
    # Untainted CPU node only: the GPU node's taint keeps ordinary pods away.
    assert {p["spec"]["nodeName"] for p in pods} == {"kwok-node-0"}


def _gpu_pod(name: str, tolerate: bool) -> str:
    spec: dict = {
        "containers": [{
            "name": "c", "image": "example.invalid/gpu:1",
            "resources": {"limits": {"nvidia.com/gpu": "1"}},
        }],
    }
    if tolerate:
        spec["tolerations"] = [{"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}]
    return json.dumps({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name}, "spec": spec})


def test_gpu_pods_schedule_only_on_gpu_node(cluster: ClusterInfo, namespace: str) -> None:
    cluster.kubectl("-n", namespace, "apply", "-f", "-", input=_gpu_pod("gpu-ok", tolerate=True))
    cluster.kubectl("-n", namespace, "apply", "-f", "-", input=_gpu_pod("gpu-no-toleration", tolerate=False))

    def running() -> bool:
        pod = cluster.kubectl_json("-n", namespace, "get", "pod", "gpu-ok")
        return pod["status"].get("phase") == "Running"

    wait_for(running, timeout=60, what="GPU pod Running")
    assert cluster.kubectl_json("-n", namespace, "get", "pod", "gpu-ok")["spec"]["nodeName"] == "kwok-gpu-0"

    def unschedulable() -> bool:
        pod = cluster.kubectl_json("-n", namespace, "get", "pod", "gpu-no-toleration")
        conds = pod["status"].get("conditions", [])
        return any(c["type"] == "PodScheduled" and c.get("reason") == "Unschedulable" for c in conds)

    wait_for(unschedulable, timeout=60, what="pod without toleration Unschedulable")


def test_garbage_collection_of_owned_object(cluster: ClusterInfo, namespace: str) -> None:
    cluster.kubectl("-n", namespace, "create", "configmap", "owner")
    owner = cluster.kubectl_json("-n", namespace, "get", "configmap", "owner")
    child = {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {
            "name": "child",
            "ownerReferences": [{
                "apiVersion": "v1", "kind": "ConfigMap",
                "name": "owner", "uid": owner["metadata"]["uid"],
            }],
        },
        "data": {"k": "v"},
    }
    cluster.kubectl("-n", namespace, "apply", "-f", "-", input=json.dumps(child))
    cluster.kubectl("-n", namespace, "delete", "configmap", "owner")

    def gone() -> bool:
        res = cluster.kubectl("-n", namespace, "get", "configmap", "child", check=False)
        return res.returncode != 0 and "NotFound" in res.stderr

    wait_for(gone, timeout=60, what="garbage collection of the owned ConfigMap")


def test_rbac_forbids_serviceaccount_without_rights(cluster: ClusterInfo, namespace: str) -> None:
    cluster.kubectl("-n", namespace, "create", "serviceaccount", "nobody")
    who = f"system:serviceaccount:{namespace}:nobody"
    can = cluster.kubectl("auth", "can-i", "list", "pods", "-n", namespace, f"--as={who}", check=False)
    assert can.stdout.strip() == "no"
    res = cluster.kubectl("-n", namespace, "get", "pods", f"--as={who}", check=False)
    assert res.returncode != 0
    assert "forbidden" in res.stderr.lower()
    # ... and granting a Role makes the same request succeed: RBAC is really evaluated.
    cluster.kubectl("-n", namespace, "create", "role", "pod-reader", "--verb=get,list", "--resource=pods")
    cluster.kubectl("-n", namespace, "create", "rolebinding", "nobody-reads",
                    "--role=pod-reader", f"--serviceaccount={namespace}:nobody")
    wait_for(
        lambda: cluster.kubectl("-n", namespace, "get", "pods", f"--as={who}", check=False).returncode == 0,
        timeout=20, what="RoleBinding to take effect",
    )


def test_hpa_controller_is_running(cluster: ClusterInfo, namespace: str) -> None:
    """The HPA controller reconciles (it reports it cannot get metrics: no metrics server)."""
    cluster.kubectl("-n", namespace, "apply", "-f", "-", input=_deployment("scaled", 1))
    cluster.kubectl("-n", namespace, "autoscale", "deployment", "scaled", "--min=1", "--max=3", "--cpu=50%")

    def reconciled() -> bool:
        hpa = cluster.kubectl_json("-n", namespace, "get", "hpa", "scaled")
        return bool(hpa.get("status", {}).get("conditions"))

    wait_for(reconciled, timeout=150, what="HPA status conditions")


def test_kubeconfig_works_for_plain_kubectl(cluster: ClusterInfo) -> None:
    out = subprocess.run(
        [cluster.kubectl_path, "get", "--raw=/readyz"],
        env=cluster.env(), capture_output=True, text=True, check=True,
    )
    assert out.stdout.strip() == "ok"


def test_helm_install_wait(cluster: ClusterInfo, namespace: str, tmp_path) -> None:
    """helm (built by build.sh) installs a chart and --wait sees its Deployment ready."""
    if not cluster.helm_path.exists():
        pytest.skip("helm not built (scripts/cluster/build.sh --only helm)")
    env = cluster.env()
    for var in ("HELM_CACHE_HOME", "HELM_CONFIG_HOME", "HELM_DATA_HOME"):
        env[var] = str(tmp_path / var.lower())

    def helm(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([str(cluster.helm_path), *args], env=env, capture_output=True,
                              text=True, check=True, timeout=180)

    assert "v3." in helm("version", "--short").stdout
    helm("create", str(tmp_path / "demo"))
    helm("install", "demo", str(tmp_path / "demo"), "-n", namespace, "--wait", "--timeout", "120s",
         "--set", "replicaCount=2")
    dep = cluster.kubectl_json("-n", namespace, "get", "deployment", "demo")
    assert dep["status"]["readyReplicas"] == 2
    helm("uninstall", "demo", "-n", namespace, "--wait")


@pytest.mark.keda
def test_keda_scales_through_external_metrics_api(cluster: ClusterInfo, namespace: str) -> None:
    """KEDA operator + metrics adapter (APIService on loopback): a cron ScaledObject activates
    0 -> 1 and its HPA scales 1 -> 3 on KEDA's external metric."""
    from tests.support.cluster import keda_running

    with keda_running() as keda:
        if keda.adapter_url is None:
            pytest.skip("keda-adapter not built: 1 -> N scaling cannot be tested")
        apisvc = cluster.kubectl_json("get", "apiservice", "v1beta1.external.metrics.k8s.io")
        assert any(c["type"] == "Available" and c["status"] == "True" for c in apisvc["status"]["conditions"])
        cluster.kubectl("-n", namespace, "apply", "-f", "-", input=_deployment("scaled", 0))
        scaled_object = {
            "apiVersion": "keda.sh/v1alpha1",
            "kind": "ScaledObject",
            "metadata": {"name": "scaled"},
            "spec": {
                "scaleTargetRef": {"name": "scaled"},
                "minReplicaCount": 0,
                "maxReplicaCount": 5,
                "pollingInterval": 5,
                "triggers": [{
                    "type": "cron",
                    "metadata": {"timezone": "Etc/UTC", "start": "0 * * * *", "end": "59 * * * *",
                                 "desiredReplicas": "3"},
                }],
            },
        }
        cluster.kubectl("-n", namespace, "apply", "-f", "-", input=json.dumps(scaled_object))

        def ready_replicas() -> bool:
            dep = cluster.kubectl_json("-n", namespace, "get", "deployment", "scaled")
            return dep.get("status", {}).get("readyReplicas") == 3

        wait_for(ready_replicas, timeout=120, what="KEDA-driven scale to 3 ready replicas")
        hpa = cluster.kubectl_json("-n", namespace, "get", "hpa", "keda-hpa-scaled")
        assert hpa["status"]["currentMetrics"][0]["type"] == "External"
        cluster.kubectl("-n", namespace, "delete", "scaledobject", "scaled", "--wait=true")
