"""Fixtures for the Helm chart: the pinned helm binary, rendering, and the loopback cluster."""

from __future__ import annotations

import os
import subprocess
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.support.cluster import ClusterInfo, bin_dir, ensure_cluster, stop_cluster

ROOT = Path(__file__).resolve().parents[2]
CHART = ROOT / "charts" / "detectflow"


@pytest.fixture(scope="session")
def helm_bin() -> Path:
    """helm v3 as built by scripts/cluster/build.sh (built once, cached, if missing)."""
    path = bin_dir() / "helm"
    if not path.exists():
        subprocess.run(["bash", str(ROOT / "scripts" / "cluster" / "build.sh"), "--only", "helm"], check=True)
    return path


@pytest.fixture(scope="session")
def helm_home(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """Helm's cache/config/data dirs of this session only (no repositories, no plugins)."""
    home = tmp_path_factory.mktemp("helm")
    return {f"HELM_{k}_HOME": str(home / k.lower()) for k in ("CACHE", "CONFIG", "DATA")}


class Helm:
    """Run helm with this session's home dirs (and a kubeconfig once a cluster is given)."""

    def __init__(self, binary: Path, home: dict[str, str], cluster: ClusterInfo | None = None) -> None:
        self.binary = binary
        self.home = home
        self.cluster = cluster

    def __call__(self, *args: str, check: bool = True, timeout: float = 180) -> subprocess.CompletedProcess[str]:
        env = self.cluster.env() if self.cluster else dict(os.environ)
        env.update(self.home)
        proc = subprocess.run(
            [str(self.binary), *args], capture_output=True, text=True, env=env, timeout=timeout
        )
        if check and proc.returncode != 0:
            raise AssertionError(f"helm {' '.join(args)} failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}")
        return proc

    def template(self, *sets: str, namespace: str = "detectflow-system", release: str = "df") -> list[dict[str, Any]]:
        """`helm template` with ``--set`` pairs; the rendered documents (hooks included)."""
        args = ["template", release, str(CHART), "--namespace", namespace]
        for s in sets:
            args += ["--set", s]
        return [d for d in yaml.safe_load_all(self(*args).stdout) if d]


@pytest.fixture(scope="session")
def helm(helm_bin: Path, helm_home: dict[str, str]) -> Helm:
    return Helm(helm_bin, helm_home)


def find(docs: list[dict[str, Any]], kind: str, name: str | None = None) -> list[dict[str, Any]]:
    """Documents of ``kind`` (and ``name``)."""
    return [d for d in docs if d["kind"] == kind and (name is None or d["metadata"]["name"] == name)]


@pytest.fixture(scope="session")
def cluster() -> Iterator[ClusterInfo]:
    info = ensure_cluster()
    yield info
    stop_cluster()  # only if this process started it


@pytest.fixture(scope="session")
def cluster_helm(helm_bin: Path, helm_home: dict[str, str], cluster: ClusterInfo) -> Helm:
    return Helm(helm_bin, helm_home, cluster)


@pytest.fixture
def namespace(cluster: ClusterInfo) -> Iterator[str]:
    name = f"dfchart-{uuid.uuid4().hex[:6]}"
    cluster.kubectl("create", "namespace", name)
    yield name
    cluster.kubectl("delete", "namespace", name, "--wait=false", check=False)


@pytest.fixture
def volume(cluster: ClusterInfo) -> Iterator[Callable[[str], str]]:
    """Make a hostPath PersistentVolume of a StorageClass name of the test's own (the loopback
    cluster has no provisioner), so the chart's Redis claim binds; removed afterwards."""
    made: list[str] = []

    def make(size: str = "2Gi") -> str:
        name = f"dfchart-{uuid.uuid4().hex[:6]}"
        cluster.apply(
            yaml.safe_dump(
                {
                    "apiVersion": "v1",
                    "kind": "PersistentVolume",
                    "metadata": {"name": name},
                    "spec": {
                        "capacity": {"storage": size},
                        "accessModes": ["ReadWriteOnce"],
                        "persistentVolumeReclaimPolicy": "Retain",
                        "storageClassName": name,
                        "hostPath": {"path": f"/tmp/{name}"},
                    },
                }
            )
        )
        made.append(name)
        return name

    yield make
    for name in made:
        cluster.kubectl("delete", "pv", name, "--wait=false", check=False)
