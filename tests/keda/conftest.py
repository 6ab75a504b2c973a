"""Fixtures for KEDA on the loopback cluster: the cluster, the real KEDA processes, a namespace."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest

from tests.support.cluster import ClusterInfo, KedaInfo, ensure_cluster, keda_running, stop_cluster


@pytest.fixture(scope="session")
def cluster() -> Iterator[ClusterInfo]:
    info = ensure_cluster()
    yield info
    stop_cluster()  # only if this process started it


@pytest.fixture(scope="module")
def keda(cluster: ClusterInfo) -> Iterator[KedaInfo]:
    """KEDA's operator (and metrics adapter, when built) as local processes; stopped afterwards
    only if this module started them."""
    with keda_running(adapter=True) as info:
        yield info


@pytest.fixture
def namespace(cluster: ClusterInfo) -> Iterator[str]:
    name = f"dfkeda-{uuid.uuid4().hex[:6]}"
    cluster.kubectl("create", "namespace", name)
    yield name
    cluster.kubectl("delete", "namespace", name, "--wait=false", check=False)
