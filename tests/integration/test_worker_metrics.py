"""A real `detectflow worker --processes 2` serves one metrics port for both processes (multiprocess mode)."""

from __future__ import annotations

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from detectflow.cli.up import free_port
from detectflow.jobs.stores.redis import RedisJobStore
from tests.integration.conftest import submit, wait_job
from tests.support.images import image_bytes
from tests.support.processes import wait_for

pytestmark = [pytest.mark.redis, pytest.mark.models]

JOBS = 6


def _samples(url: str) -> dict[tuple[str, tuple], float]:
    text = httpx.get(url, timeout=5).text
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def test_two_worker_processes_share_one_metrics_port(client, run_worker, store: RedisJobStore) -> None:
    # Given a worker with two processes and a metrics port
    port = free_port()
    run_worker("face", worker_processes=2, worker_threads=1, worker_metrics_port=port)  # one job in hand each
    wait_for(lambda: len(store.live_workers("face", 60)) == 2, 120, 0.2, what="both processes")
    # When it runs a few jobs (the two processes share the queue)
    ids = [submit(client, image_bytes("astronaut")).json()["id"] for _ in range(JOBS)]
    assert all(wait_job(client, i)["status"] == "succeeded" for i in ids)
    # Then the one port reports every job, whichever process ran it, and the model load of the processes
    url = f"http://127.0.0.1:{port}/metrics"
    samples = wait_for(
        lambda: (s := _samples(url)).get(("detectflow_worker_jobs_total", (("kind", "face"), ("outcome", "succeeded"))))
        == JOBS and s,
        30, 0.2, what=f"{JOBS} jobs on {url}",
    )  # fmt: skip
    assert samples[("detectflow_worker_inference_seconds_count", (("kind", "face"),))] == JOBS
    assert any(name == "detectflow_worker_model_load_seconds" and v > 0 for (name, _), v in samples.items())
