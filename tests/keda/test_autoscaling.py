"""Live autoscaling on queue depth: the real KEDA operator (and metrics adapter) on the loopback
cluster, a real redis-server, real Dramatiq messages and a real `detectflow worker` draining them.

The worker Deployment and ScaledObject are exactly what the operator renders (render_all). kwok
fakes the pods, so "replicas" here is the Deployment's spec.replicas as KEDA and the HPA set it;
the work itself is done by a worker process on this machine against the same Redis and prefix.
"""

from __future__ import annotations

import asyncio

import io
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis as redis_lib
from PIL import Image

from detectflow.cli.up import RedisServer
from detectflow.config import Settings, Task
from detectflow.jobs.service import JobService
from detectflow.jobs.stores.redis import AsyncRedisJobStore, RedisJobStore, connect, connect_async
from detectflow.operator.crd import DetectionPipeline, dump_yaml
from detectflow.operator.render import queue_keys, redis_prefix, render_all
from detectflow.worker.broker import DramatiqEnqueuer, make_broker
from tests.support.cluster import ClusterInfo, KedaInfo, wait_for
from tests.support.processes import Proc, cli_env, start_worker

pytestmark = [pytest.mark.cluster, pytest.mark.keda, pytest.mark.redis, pytest.mark.models, pytest.mark.timeout(420)]

ROOT = Path(__file__).resolve().parents[2]
POLLING_SECONDS = 2
COOLDOWN_SECONDS = 6
MAX_REPLICAS = 3
#: Slack on top of KEDA's own intervals: one reconcile, one apiserver round trip, our polling.
SLACK_SECONDS = 8


@pytest.fixture(scope="module")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    """A real redis-server on 127.0.0.1; KEDA runs on this host, so it reaches it there."""
    with RedisServer(tmp_path_factory.mktemp("keda-redis"), appendonly=False) as server:
        yield server


def _pipeline(namespace: str, redis_port: int) -> DetectionPipeline:
    return DetectionPipeline.from_body(
        {
            "metadata": {"name": "autoscale", "namespace": namespace},
            "spec": {
                "redis": {"address": f"127.0.0.1:{redis_port}"},
                "workers": [
                    {
                        "name": "faces",
                        "task": "face",
                        "concurrency": 1,
                        "autoscaling": {
                            "minReplicas": 0,
                            "maxReplicas": MAX_REPLICAS,
                            "pollingIntervalSeconds": POLLING_SECONDS,
                            "cooldownSeconds": COOLDOWN_SECONDS,
                        },
                    }
                ],
            },
        }
    )


def _replicas(cluster: ClusterInfo, namespace: str, name: str) -> int:
    deploy = cluster.kubectl_json("-n", namespace, "get", "deployment", name)
    return int(deploy["spec"].get("replicas", 1))


def _condition(obj: dict[str, Any], type_: str) -> str | None:
    for c in (obj.get("status") or {}).get("conditions") or []:
        if c["type"] == type_:
            return c["status"]
    return None


def _png() -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (96, 96), (180, 160, 140)).save(buf, "PNG")
    return buf.getvalue()


class Timeline:
    """Measured moments, printed at the end (pytest -s) and kept for the failure message."""

    def __init__(self) -> None:
        self.t0 = time.monotonic()
        self.events: list[tuple[float, str]] = []

    def mark(self, what: str) -> float:
        now = time.monotonic()
        self.events.append((now - self.t0, what))
        return now

    def __str__(self) -> str:
        return "\n".join(f"  t={t:6.1f} s  {what}" for t, what in self.events)


def test_keda_scales_worker_from_zero_on_queue_depth_and_back(
    cluster: ClusterInfo, keda: KedaInfo, namespace: str, redis_server: RedisServer, tmp_path: Path
) -> None:
    timeline = Timeline()
    pipeline = _pipeline(namespace, redis_server.port)
    prefix = redis_prefix(pipeline)
    deployment = "autoscale-faces"
    keys = queue_keys(prefix, "face")
    r = redis_lib.Redis(port=redis_server.port)

    # Given the operator's manifests for a worker with minReplicas 0, applied
    cluster.apply(dump_yaml(*render_all(pipeline)))

    def scaled_object() -> dict[str, Any]:
        return cluster.kubectl_json("-n", namespace, "get", "scaledobject", deployment)

    # Then KEDA takes the ScaledObject (Ready), creates its HPA, and the idle worker sits at 0
    wait_for(lambda: _condition(scaled_object(), "Ready") == "True", timeout=60, what="ScaledObject Ready")
    hpa = wait_for(
        lambda: cluster.kubectl_json("-n", namespace, "get", "hpa", f"keda-hpa-{deployment}"),
        timeout=30, what="KEDA's HPA",
    )  # fmt: skip
    wait_for(lambda: _replicas(cluster, namespace, deployment) == 0, timeout=60, what="0 replicas")
    timeline.mark(f"idle: 0 replicas (HPA {hpa['metadata']['name']}: external metric "
                  f"{hpa['spec']['metrics'][0]['external']['metric']['name']})")
    time.sleep(POLLING_SECONDS * 2)  # several polls of an empty queue
    assert _replicas(cluster, namespace, deployment) == 0
    assert _condition(scaled_object(), "Active") == "False"

    # The HPA KEDA made: 1..max on one external metric, AverageValue = concurrency per pod
    assert hpa["spec"]["minReplicas"] == 1 and hpa["spec"]["maxReplicas"] == MAX_REPLICAS
    (metric,) = hpa["spec"]["metrics"]
    assert metric["type"] == "External"
    assert metric["external"]["metric"]["name"].endswith("composite-metric")  # unfinished + delayed
    assert metric["external"]["target"] == {"type": "AverageValue", "averageValue": "1"}
    assert metric["external"]["metric"]["selector"]["matchLabels"] == {"scaledobject.keda.sh/name": deployment}

    # When jobs are submitted: real Dramatiq messages on the pipeline's queue (its own prefix)
    settings = Settings(redis_url=redis_server.url, redis_prefix=prefix)
    broker = make_broker(settings, set_global=False)
    service = JobService(
        AsyncRedisJobStore(connect_async(redis_server.url), prefix, settings.job_ttl_seconds), DramatiqEnqueuer(broker), settings
    )

    async def submit_all() -> list[str]:
        return [(await service.submit(_png(), Task.face))[0].id for _ in range(2 * MAX_REPLICAS)]

    jobs = asyncio.run(submit_all())
    assert r.hlen(keys["unfinished"]) == len(jobs)
    sent = timeline.mark(f"enqueued {len(jobs)} jobs (HLEN {keys['unfinished']} = {len(jobs)})")

    # Then KEDA activates the worker (0 -> >= 1) within its polling interval plus a little
    wait_for(lambda: _replicas(cluster, namespace, deployment) >= 1, timeout=POLLING_SECONDS + SLACK_SECONDS + 20,
             interval=0.2, what="activation 0 -> 1")  # fmt: skip
    activation = timeline.mark(f"activated: {_replicas(cluster, namespace, deployment)} replica(s)") - sent
    assert activation <= POLLING_SECONDS + SLACK_SECONDS, f"activation took {activation:.1f} s\n{timeline}"
    assert _condition(scaled_object(), "Active") == "True"

    # And, with the metrics adapter, the HPA takes it on to N = backlog / concurrency (capped)
    if keda.adapter_url:
        wait_for(lambda: _replicas(cluster, namespace, deployment) == MAX_REPLICAS, timeout=90, interval=0.5,
                 what=f"HPA 1 -> {MAX_REPLICAS}")  # fmt: skip
        timeline.mark(f"HPA scaled out to {MAX_REPLICAS} replicas")
        status = cluster.kubectl_json("-n", namespace, "get", "hpa", f"keda-hpa-{deployment}")["status"]
        assert status["desiredReplicas"] == MAX_REPLICAS
        (current,) = status["currentMetrics"]  # read through the adapter (external.metrics.k8s.io)
        assert int(current["external"]["current"]["averageValue"]) >= 1

    # When a real worker drains the queue (the pods are fake: the work is done here)
    env = cli_env(redis_url=redis_server.url, redis_prefix=prefix, worker_dead_after_seconds=10)
    worker: Proc = start_worker(env, tmp_path / "worker.log", "face")
    try:
        wait_for(lambda: r.hlen(keys["unfinished"]) == 0 and r.hlen(keys["delayed"]) == 0, timeout=120,
                 what="the queue drained")  # fmt: skip
        drained = timeline.mark("queue drained by a real `detectflow worker`")
        store = RedisJobStore(connect(redis_server.url), prefix, settings.job_ttl_seconds)
        assert all(store.get(j).status.value == "succeeded" for j in jobs)

        # Then KEDA returns the worker to 0 once the queue has been idle for the cooldown
        wait_for(lambda: _replicas(cluster, namespace, deployment) == 0,
                 timeout=COOLDOWN_SECONDS + POLLING_SECONDS + SLACK_SECONDS + 20, interval=0.2,
                 what="scale in to 0")  # fmt: skip
        back = timeline.mark("back to 0 replicas") - drained
    finally:
        worker.stop()
    assert back <= COOLDOWN_SECONDS + POLLING_SECONDS + SLACK_SECONDS, f"scale-in took {back:.1f} s\n{timeline}"
    print(f"\nKEDA live autoscaling (polling {POLLING_SECONDS} s, cooldown {COOLDOWN_SECONDS} s):\n{timeline}")


def test_keda_reference_manifests_are_accepted_by_the_apiserver(
    cluster: ClusterInfo, keda: KedaInfo, namespace: str
) -> None:
    # keda/*.yaml (golden-tested against render_*) validate against KEDA's own CRD schemas.
    for name in ("scaledobject.yaml", "triggerauthentication.yaml"):
        text = (ROOT / "keda" / name).read_text().replace("namespace: vision", f"namespace: {namespace}")
        cluster.kubectl("apply", "--dry-run=server", "-f", "-", input=text)
