"""Poison and hang: a job that kills its worker ends worker_crashed after the cap, one stuck in C ends by the hard deadline."""

from __future__ import annotations

import re
from datetime import datetime
from pathlib import Path

import httpx
import pytest
import redis

from tests.support.faults import CRASH_SIZE, HANG_SIZE, marker_png
from tests.support.images import image_bytes
from tests.support.processes import wait_for
from tests.support.up import UpProcess

pytestmark = [pytest.mark.redis, pytest.mark.models, pytest.mark.slow]

#: Normal jobs around the two faulty ones, as the issue asks.
NORMAL_JOBS = 50
#: The workers' time limit and hard-deadline grace here (seconds): short, so the hang ends quickly.
TIME_LIMIT, GRACE = 3, 2
#: Deliveries of the crashing job before it fails.
MAX_DELIVERIES = 3


def _submit(client: httpx.Client, data: bytes) -> str:
    res = client.post("/v1/jobs", files={"file": ("img.png", data)}, data={"task": "face", "cache": "false"})
    assert res.status_code == 202, res.text
    return res.json()["id"]


def _final(client: httpx.Client, job_id: str) -> dict | None:
    job = client.get(f"/v1/jobs/{job_id}").json()
    return job if job["status"] in ("succeeded", "failed", "cancelled") else None


def test_poison_and_hang_jobs_end_with_a_reason_and_the_others_succeed(tmp_path: Path):
    # Given `detectflow up` with two face worker processes whose detector dies or hangs on marker images
    up = UpProcess(
        tmp_path / "state", tmp_path / "up.log", workers=2,
        worker_detector_factory="tests.support.faults:faulty_detector",
        worker_dead_after_seconds=3, worker_time_limit_seconds=TIME_LIMIT,
        worker_hard_deadline_grace_seconds=GRACE, worker_max_deliveries=MAX_DELIVERIES,
        up_crash_loop_restarts=20, up_restart_backoff_seconds=0.5, up_restart_max_backoff_seconds=2,
    )  # fmt: skip
    normal = image_bytes("astronaut")
    try:
        with httpx.Client(base_url=up.url, timeout=10, headers=up.auth) as client:
            # When a crashing and a hanging job arrive among 50 normal ones
            ids = [_submit(client, normal) for _ in range(NORMAL_JOBS // 2)]
            crash = _submit(client, marker_png(CRASH_SIZE))
            hang = _submit(client, marker_png(HANG_SIZE))
            ids += [_submit(client, normal) for _ in range(NORMAL_JOBS - NORMAL_JOBS // 2)]
            done = {i: wait_for(lambda i=i: _final(client, i), 240, 0.2, what=f"job {i}") for i in [*ids, crash, hang]}
            # Then the crashing job failed worker_crashed after exactly the cap of deliveries
            crashed = done[crash]
            assert crashed["status"] == "failed" and crashed["error"]["code"] == "worker_crashed", crashed
            assert crashed["attempts"] == MAX_DELIVERIES
            # and its message went to the dead letters instead of coming back
            redis_url = re.search(r"redis-server on (redis://\S+)", up.output()).group(1)
            r = redis.Redis.from_url(redis_url)
            dead = [m for m in r.hvals("detectflow:detect.face.XQ.msgs") if crash.encode() in m]
            assert len(dead) == 1
            # And the hanging job failed timeout within its time limit + grace (+ the watchdog's tick)
            hung = done[hang]
            assert hung["status"] == "failed" and hung["error"]["code"] == "timeout", hung
            took = datetime.fromisoformat(hung["finished_at"]) - datetime.fromisoformat(hung["started_at"])
            assert took.total_seconds() <= TIME_LIMIT + GRACE + 2, took
            # And every normal job succeeded, each stored once
            statuses = [done[i]["status"] for i in ids]
            assert statuses == ["succeeded"] * NORMAL_JOBS, statuses
            counts = {k.decode(): int(v) for k, v in r.hgetall("detectflow:stats:jobs").items()}
            assert counts.get("succeeded") == NORMAL_JOBS and counts.get("failed") == 2, counts
            # (the worker processes died, and were restarted by the supervisor; the last may still be in backoff.
            # At least 3 deaths: the watchdog's kill of the hang job's process may also count against the poison job.)
            wait_for(lambda: up.output().count("restarted") >= MAX_DELIVERIES, 60, 0.2, what="the restarts")
            wait_for(lambda: up._ready(), 60, 0.2, what="both workers back")
    finally:
        up.stop()
