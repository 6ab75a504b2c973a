"""Overload: 3x the measured capacity, open loop: only 202 and 429, bounded latency and memory, nothing lost."""

from __future__ import annotations

import asyncio
import os
import statistics
import time
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import cv2
import httpx
import pytest
import redis

from tests.fuzz.conftest import Platform
from tests.support.images import image_bgr
from tests.support.processes import AUTH, wait_for

pytestmark = [pytest.mark.redis, pytest.mark.models, pytest.mark.slow]

#: Seconds of overload (``DETECTFLOW_OVERLOAD_SECONDS`` overrides; `make overload` runs 60).
DEFAULT_OVERLOAD_SECONDS = 15
#: Offered load, as a multiple of the measured capacity.
DEFAULT_OVERLOAD_FACTOR = 3
#: Jobs of the capacity measurement (one burst, drained by the worker; fewer than the queue holds).
DEFAULT_CAPACITY_JOBS = 40
#: Unfinished face jobs at which the API answers 429 queue_full.
DEFAULT_QUEUE_DEPTH = 50
#: Bound on a POST's 99th percentile latency under overload (seconds, on a shared 2-core machine).
DEFAULT_P99_BOUND_SECONDS = 2.0
#: Bound on the API process's RSS growth over the run (MiB).
DEFAULT_API_RSS_GROWTH_MB = 100
#: Redis memory allowed per accepted job beyond its image (bytes: record, result, queue message, indexes).
DEFAULT_REDIS_BYTES_PER_JOB = 16 * 1024


@dataclass(frozen=True, slots=True)
class Answer:
    status: int
    at: float  # when it was sent, seconds into the run
    seconds: float
    job_id: str | None
    retry_after: str | None
    code: str | None


def _rss_mb(pid: int) -> float:
    """Resident set size of a process (MiB), from /proc."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise AssertionError(f"no VmRSS for {pid}")


def _image() -> bytes:
    """The astronaut photo at 1024x1024 (the face model's largest side) as a JPEG of about 50 kB.

    What the API spends on an upload grows with its bytes (multipart, hashing, Redis), what the face
    worker spends with its pixels: a large image in a small file makes the workers, not the one API
    process, what 3x their capacity overloads, even on a shared 2-core machine.
    """
    img = cv2.resize(image_bgr("astronaut"), (1024, 1024), interpolation=cv2.INTER_CUBIC)
    return cv2.imencode(".jpg", img, [cv2.IMWRITE_JPEG_QUALITY, 40])[1].tobytes()


def _when(stamp: str) -> float:
    return datetime.fromisoformat(stamp.replace("Z", "+00:00")).timestamp()


def _capacity(client: httpx.Client, data: bytes, jobs: int) -> float:
    """Jobs per second the workers drain: a burst of ``jobs``, first start to last finish."""
    ids = []
    for _ in range(jobs):
        resp = client.post("/v1/jobs", files={"file": ("a.jpg", data)}, data={"task": "face", "cache": "false"})
        assert resp.status_code == 202, resp.text
        ids.append(resp.json()["id"])
    done = [_wait_succeeded(client, job_id, 120) for job_id in ids]
    span = max(_when(j["finished_at"]) for j in done) - min(_when(j["started_at"]) for j in done)
    return jobs / max(span, 1e-3)


def _wait_succeeded(client: httpx.Client, job_id: str, timeout: float) -> dict:
    deadline = time.monotonic() + timeout
    while (job := client.get(f"/v1/jobs/{job_id}", params={"wait": 10}).json())["status"] != "succeeded":
        assert job["status"] in ("queued", "running"), f"job {job_id} ended {job['status']}: {job.get('error')}"
        assert time.monotonic() < deadline, f"job {job_id} still {job['status']} after {timeout} s"
    return job


async def _offer(url: str, data: bytes, rate: float, seconds: float) -> list[Answer]:
    """Open loop: one POST every 1/rate s for ``seconds``, whatever the answers take."""
    limits = httpx.Limits(max_connections=256, max_keepalive_connections=256)
    async with httpx.AsyncClient(base_url=url, headers=AUTH, timeout=60, limits=limits) as client:

        async def one() -> Answer:
            started = time.perf_counter()
            at = loop.time() - start
            resp = await client.post("/v1/jobs", files={"file": ("a.jpg", data)}, data={"task": "face", "cache": "false"})
            took = time.perf_counter() - started
            body = resp.json()
            return Answer(
                resp.status_code,
                at,
                took,
                body.get("id") if resp.status_code == 202 else None,
                resp.headers.get("retry-after"),
                (body.get("error") or {}).get("code"),
            )

        loop = asyncio.get_running_loop()
        start, tasks = loop.time(), []
        for i in range(int(rate * seconds)):
            await asyncio.sleep(max(0.0, start + i / rate - loop.time()))
            tasks.append(asyncio.create_task(one()))
        return await asyncio.gather(*tasks)


def test_overload_three_times_capacity_sheds_with_429_and_loses_nothing(platform: Platform, figures):
    seconds = float(os.environ.get("DETECTFLOW_OVERLOAD_SECONDS", DEFAULT_OVERLOAD_SECONDS))
    # Given the API (the queue capped at DEFAULT_QUEUE_DEPTH, the key's rate limit out of the way) and one
    # single-threaded face worker: the workers, not the API, are what 3x their capacity overloads
    limits = {"key_rate_limit_per_second": 100_000, "key_burst": 100_000, "key_max_queued_jobs": 1_000_000}
    url = platform.start_api(api_max_queue_depth=DEFAULT_QUEUE_DEPTH, **limits)
    platform.start_worker("face", worker_threads=1, intra_op_threads=1)
    data = _image()
    r = redis.Redis.from_url(platform.redis.url)
    with platform.client() as client:
        # and its capacity, measured
        capacity = _capacity(client, data, DEFAULT_CAPACITY_JOBS)
        rate = DEFAULT_OVERLOAD_FACTOR * capacity
        rss_before, redis_before = _rss_mb(platform.api.pid), r.info("memory")["used_memory"]

        # When 3x that is offered for `seconds`
        started = time.monotonic()
        answers = asyncio.run(_offer(url, data, rate, seconds))
        offered_for = time.monotonic() - started
        rss_after, redis_after = _rss_mb(platform.api.pid), r.info("memory")["used_memory"]

        # Then the answers are 202 or 429 (queue_full, with Retry-After), nothing else
        statuses = {a.status for a in answers}
        accepted = [a.job_id for a in answers if a.status == 202]
        refused = [a for a in answers if a.status == 429]
        p50, p99 = (statistics.quantiles([a.seconds for a in answers], n=100)[i] for i in (49, 98))
        figures(
            f"overload: capacity {capacity:.1f} jobs/s, offered {rate:.1f}/s for {seconds:.0f} s"
            f" ({len(answers)} POSTs in {offered_for:.1f} s): {len(accepted)} x 202, {len(refused)} x 429;"
            f" POST p50 {p50 * 1000:.0f} ms, p99 {p99 * 1000:.0f} ms;"
            f" API RSS {rss_before:.0f} -> {rss_after:.0f} MiB; Redis used_memory"
            f" {redis_before / 2**20:.1f} -> {redis_after / 2**20:.1f} MiB"
        )
        assert statuses <= {202, 429}, sorted(statuses)
        assert refused and accepted, "3x capacity must both be admitted and shed"
        assert all(a.code == "queue_full" and a.retry_after for a in refused)
        slow = [f"{a.at:.1f}s:{a.seconds:.1f}s" for a in answers if a.seconds > DEFAULT_P99_BOUND_SECONDS]
        assert p99 <= DEFAULT_P99_BOUND_SECONDS, f"POST p99 {p99:.2f} s; slow (sent at: took) {slow[:40]}"
        # and memory stays bounded: the API's by a constant, Redis's by what was accepted
        assert rss_after - rss_before <= DEFAULT_API_RSS_GROWTH_MB
        assert redis_after - redis_before <= len(accepted) * (len(data) + DEFAULT_REDIS_BYTES_PER_JOB) + 16 * 2**20

        # And afterwards the backlog drains: every accepted job succeeds
        drain_started = time.monotonic()
        bound = 60 + 3 * DEFAULT_QUEUE_DEPTH / capacity
        for job_id in accepted:
            _wait_succeeded(client, job_id, max(1.0, bound - (time.monotonic() - drain_started)))
        figures(f"overload: the backlog drained in {time.monotonic() - drain_started:.1f} s (bound {bound:.0f} s)")
        wait_for(lambda: client.get("/readyz").status_code == 200, 10, what="the API to stay ready")
