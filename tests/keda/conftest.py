"""Fixtures for KEDA on the loopback cluster: the cluster, the real KEDA processes, a namespace."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest

from tests.support.cluster import (
    ClusterError,
    ClusterInfo,
    KedaInfo,
    ensure_cluster,
    keda_is_running,
    keda_running,
    stop_cluster,
    stop_keda,
)


@pytest.fixture(scope="session")
def cluster() -> Iterator[ClusterInfo]:
    info = ensure_cluster()
    yield info
    stop_cluster()  # only if this process started it


@pytest.fixture(scope="module")
def keda(cluster: ClusterInfo) -> Iterator[KedaInfo]:
    """KEDA's operator (and metrics adapter, when built) as local processes; stopped afterwards
    only if this module started them."""
    was_running = keda_is_running()
    try:
        cm = keda_running(adapter=True)
        info = cm.__enter__()
    except ClusterError:
        if not was_running:  # leave no process behind, even if a failed start left one
            try:
                stop_keda()
            except Exception:  # noqa: BLE001 - keep the start error, which says what went wrong
                pass
        raise
    try:
        yield info
    finally:
        cm.__exit__(None, None, None)


@pytest.fixture
def namespace(cluster: ClusterInfo) -> Iterator[str]:
    name = f"dfkeda-{uuid.uuid4().hex[:6]}"
    cluster.kubectl("create", "namespace", name)
    yield name
    cluster.kubectl("delete", "namespace", name, "--wait=false", check=False)
