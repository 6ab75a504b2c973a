"""Fixtures for the operator on the real loopback cluster: CRDs, a namespace, the operator's own
ServiceAccount identity (a real token, through a recording proxy), and the operator subprocess."""

from __future__ import annotations

import json
import os
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from detectflow.cli.up import free_port
from detectflow.operator.crd import dump_yaml
from detectflow.operator.rbac import render_namespaced_rbac
from tests.operator.recorder import Recorder
from tests.support.cluster import ClusterInfo, ensure_cluster, install_keda_crds, stop_cluster, wait_for
from tests.support.crds import install_gateway_crds, install_monitoring_crds
from tests.support.processes import Proc

ROOT = Path(__file__).resolve().parents[2]
OPERATOR_SA = "detectflow-operator"


@pytest.fixture(scope="session")
def cluster() -> Iterator[ClusterInfo]:
    info = ensure_cluster()
    yield info
    stop_cluster()  # only if this process started it


@pytest.fixture(scope="session")
def crds(cluster: ClusterInfo) -> ClusterInfo:
    """Our CRD (from crds/), KEDA's, the Prometheus operator's and Gateway API's CRDs (from the Go module cache),
    established."""
    install_keda_crds(cluster)
    install_monitoring_crds(cluster)
    install_gateway_crds(cluster)
    cluster.kubectl("apply", "--server-side", "--force-conflicts", "-f", str(ROOT / "crds"))
    cluster.kubectl(
        "wait", "--for=condition=Established", "--timeout=60s", "crd/detectionpipelines.detectflow.io"
    )
    return cluster


def _create_namespace(cluster: ClusterInfo, prefix: str) -> str:
    name = f"{prefix}-{uuid.uuid4().hex[:6]}"
    cluster.kubectl("create", "namespace", name)
    return name


@pytest.fixture(scope="module")
def namespace(crds: ClusterInfo) -> Iterator[str]:
    name = _create_namespace(crds, "dfop")
    yield name
    crds.kubectl("delete", "namespace", name, "--wait=false", check=False)




class Operator:
    """`detectflow operator --namespace NS` run as its ServiceAccount through a recording proxy."""

    def __init__(self, cluster: ClusterInfo, namespace: str, home: Path) -> None:
        self.cluster = cluster
        self.namespace = namespace
        self.home = home
        self.sa_namespace = _create_namespace(cluster, "dfsys")
        cluster.apply(dump_yaml(*render_namespaced_rbac(namespace, namespace=self.sa_namespace)))
        token = cluster.kubectl(
            "-n", self.sa_namespace, "create", "token", OPERATOR_SA, "--duration=2h"
        ).stdout.strip()
        admin = yaml.safe_load(Path(cluster.kubeconfig).read_text())
        ca_file = home / "ca.crt"
        ca = admin["clusters"][0]["cluster"]
        if "certificate-authority-data" in ca:
            import base64

            ca_file.write_bytes(base64.b64decode(ca["certificate-authority-data"]))
        else:
            ca_file.write_text(Path(ca["certificate-authority"]).read_text())
        self.recorder = Recorder(cluster.apiserver_url, str(ca_file), token)
        self.kubeconfig = home / "operator.kubeconfig"
        self.kubeconfig.write_text(
            yaml.safe_dump(
                {
                    "apiVersion": "v1",
                    "kind": "Config",
                    "clusters": [{"name": "proxy", "cluster": {"server": self.recorder.url}}],
                    "users": [{"name": "operator", "user": {}}],
                    "contexts": [{"name": "operator", "context": {"cluster": "proxy", "user": "operator"}}],
                    "current-context": "operator",
                }
            )
        )
        self.proc: Proc | None = None
        self.logs: list[Path] = []
        self.metrics_port = free_port()  # the operator's Prometheus /metrics

    def start(self) -> None:
        env = {k: v for k, v in os.environ.items() if not k.startswith("DETECTFLOW_")}
        env["KUBECONFIG"] = str(self.kubeconfig)
        log = self.home / f"operator-{len(self.logs)}.log"
        self.logs.append(log)
        self.proc = Proc(
            ["operator", "--namespace", self.namespace, "--resync-seconds", "2", "--verbose",
             "--metrics-host", "127.0.0.1", "--metrics-port", str(self.metrics_port)], env, log,
        )

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.stop(timeout=20)
            self.proc = None

    def output(self) -> str:
        return "".join(p.read_text(errors="replace") for p in self.logs if p.exists())

    def close(self) -> None:
        self.stop()
        self.recorder.close()
        self.cluster.kubectl("delete", "namespace", self.sa_namespace, "--wait=false", check=False)


@pytest.fixture(scope="module")
def operator(crds: ClusterInfo, namespace: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Operator]:
    op = Operator(crds, namespace, tmp_path_factory.mktemp("operator"))
    op.start()
    yield op
    op.close()


@pytest.fixture
def kube(crds: ClusterInfo, namespace: str) -> Callable[..., Any]:
    """kubectl -n NAMESPACE ... -o json, parsed (as the cluster admin)."""

    def get(*args: str) -> Any:
        return json.loads(crds.kubectl("-n", namespace, *args, "-o", "json").stdout)

    return get


def condition(obj: dict[str, Any], type_: str) -> dict[str, Any]:
    for cond in (obj.get("status") or {}).get("conditions") or []:
        if cond["type"] == type_:
            return cond
    return {}


def wait_until(predicate: Callable[[], Any], what: str, operator: Operator | None = None, timeout: float = 90) -> Any:
    try:
        return wait_for(predicate, timeout=timeout, interval=0.5, what=what)
    except TimeoutError:
        tail = operator.output()[-6000:] if operator else ""
        raise AssertionError(f"timed out waiting for {what}\n--- operator log ---\n{tail}") from None
