"""The operator's API client against the real apiserver (no mocks)."""

from __future__ import annotations

import kubernetes

from detectflow.operator import apply
from tests.support.cluster import ClusterInfo


def test_is_served_is_false_for_an_api_group_nobody_serves(cluster: ClusterInfo) -> None:
    # The apiserver answers such discovery requests with a plain-text "404 page not found": the
    # client must read that as "not served" (KEDA absent -> a KedaNotInstalled condition), not crash.
    client = apply.Client(kubernetes.config.new_client_from_config(str(cluster.kubeconfig)))
    assert client.is_served("apps/v1") is True
    assert client.is_served("nothing.detectflow.example/v1") is False
