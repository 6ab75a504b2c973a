"""detectflow.client against the real stack: a `detectflow api` process, real workers and Redis, real faults."""

from __future__ import annotations

import asyncio
import json
import logging
import signal
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path

import httpx
import pytest

from detectflow.client import (
    ApiError,
    AsyncClient,
    CircuitBreaker,
    CircuitOpenError,
    Client,
    JobStatus,
    RetryPolicy,
)
from detectflow.video.models import VideoResult
from tests.integration.conftest import storage_env
from tests.support.lossy_proxy import LossyProxy
from tests.support.images import image_bytes, image_path
from tests.support.processes import TEST_ADMIN_KEY, Proc, cli_env, start_api, wait_for
from tests.support.videos import video_path

pytestmark = [pytest.mark.redis, pytest.mark.slow]

#: Retries fast enough for a test, patient enough for an API restart (about 3 s).
PATIENT = RetryPolicy(max_attempts=40, backoff_base=0.1, backoff_cap=0.5)


@pytest.fixture
def api_env(settings) -> dict[str, str]:
    # the same blob store as the workers (run_worker passes it too)
    return cli_env(redis_url=settings.redis_url, redis_prefix=settings.redis_prefix, **storage_env(settings))


@pytest.fixture
def api(api_env, tmp_path: Path):
    """A real `detectflow api` process; yields its URL."""
    proc, url = start_api(api_env, tmp_path / "api.log")
    yield url
    proc.stop()


def _tenant_key(url: str, **limits) -> tuple[str, str]:
    """A new tenant and a key of its own (so its job list starts empty), made through the keys API."""
    tenant = f"client-{uuid.uuid4().hex[:8]}"
    with Client(url, TEST_ADMIN_KEY) as admin:
        return tenant, admin.create_key(tenant, "client-test", **limits).key


def test_client_submits_waits_gets_lists_and_draws(api, run_worker):
    # Given a face worker and a tenant of this test's own
    run_worker("face")
    _, key = _tenant_key(api)
    with Client(api, key) as client:
        assert client.health().status == "ok"
        # When the astronaut is submitted as a path, as bytes and as a file object
        by_path = client.submit(image_path("astronaut"), "face")
        by_bytes = client.submit(image_bytes("astronaut"), "face", filename="astronaut.png")
        with image_path("astronaut").open("rb") as fh:
            by_file = client.submit(fh, "face")
        # Then each is its own job, and each one ends with the astronaut's one face
        ids = [by_path.id, by_bytes.id, by_file.id]
        assert len(set(ids)) == 3 and by_path.status is JobStatus.queued
        for job_id in ids:
            job = client.wait_job(job_id, timeout=60)
            assert job.status is JobStatus.succeeded, job.error
            assert [d.label for d in job.result.detections] == ["face"]
            assert job.result.detections[0].score > 0.9
        assert client.get_job(by_path.id).result == client.wait_job(by_path.id).result
        # And the list has exactly those three, newest first; the annotated image is a PNG
        listed = client.list_jobs(limit=10)
        assert [j.id for j in listed.items] == ids[::-1] and listed.next_cursor is None
        assert [j.id for j in client.iter_jobs(page_size=1)] == ids[::-1]
        assert client.list_jobs(status="failed").items == []
        assert client.annotated_png(by_path.id).startswith(b"\x89PNG\r\n\x1a\n")


def test_client_runs_a_video_job_with_its_options_frames_and_webm(api, run_worker):
    # Given a face worker and the carphone clip (one face throughout)
    run_worker("face")
    _, key = _tenant_key(api)
    with Client(api, key) as client:
        # When it is submitted with video options: 6 frames at most, no tracking
        job = client.submit(video_path("carphone_pristine"), "face", sample_fps=5, max_frames=6, track=False)
        done = client.wait_job(job.id, timeout=120)
        # Then the job is a video job with 6 sampled frames, each with the face, read page by page
        assert done.status is JobStatus.succeeded, done.error
        assert isinstance(done.result, VideoResult) and done.result.video.frames_sampled == 6 and done.result.tracks == []
        first = client.frames(job.id, limit=4)
        rest = client.frames(job.id, offset=first.next_offset)
        frames = first.items + rest.items
        assert (first.total, len(frames), rest.next_offset) == (6, 6, None)
        assert all([d.label for d in f.detections] == ["face"] for f in frames)
        # And its annotated media is a WebM (EBML magic)
        assert client.annotated(job.id)[:4] == b"\x1a\x45\xdf\xa3"


def test_client_cancels_a_queued_job_and_reads_api_errors(api):
    # Given no object worker, so an object job stays queued
    _, key = _tenant_key(api)
    with Client(api, key) as client:
        job = client.submit(image_path("coffee"), "object")
        # When it is cancelled, then it is cancelled (twice is a no-op)
        assert client.cancel_job(job.id).status is JobStatus.cancelled
        assert client.cancel_job(job.id).status is JobStatus.cancelled
        assert client.wait_job(job.id, timeout=1).status is JobStatus.cancelled
        # And the API's errors arrive typed, without retries
        with pytest.raises(ApiError) as missing:
            client.get_job("0" * 32)
        assert (missing.value.status_code, missing.value.code) == (404, "job_not_found")
        with pytest.raises(ApiError) as bad:
            client.submit(b"not an image", "face")
        assert (bad.value.status_code, bad.value.code) == (415, "unsupported_media_type")
    with Client(api, "dfk_not-a-key") as stranger, pytest.raises(ApiError) as refused:
        stranger.list_jobs()
    assert refused.value.code == "unauthorized"


def test_async_client_runs_the_same_jobs(api, run_worker):
    run_worker("face")
    _, key = _tenant_key(api)

    async def main() -> list:
        async with AsyncClient(api, key) as client:
            jobs = await asyncio.gather(*(client.submit(image_bytes("astronaut"), "face") for _ in range(3)))
            done = await asyncio.gather(*(client.wait_job(j.id, timeout=60) for j in jobs))
            page = await client.list_jobs()
            return [done, page, [j async for j in client.iter_jobs(page_size=2)]]

    done, page, iterated = asyncio.run(main())
    assert {j.status for j in done} == {JobStatus.succeeded}
    assert {j.id for j in page.items} == {j.id for j in done} == {j.id for j in iterated}


def test_client_retries_a_real_429_after_its_retry_after(api, caplog):
    # Given a key allowed one submit now and one every 2 s after (a real token bucket in Redis)
    _, key = _tenant_key(api, rate_limit_per_second=0.5, burst=1)
    with Client(api, key, retry=RetryPolicy(max_attempts=1)) as impatient:
        impatient.submit(image_bytes("astronaut"), "face")
        # Without retries, the second submit meets the API's 429 and its Retry-After
        with pytest.raises(ApiError) as limited:
            impatient.submit(image_bytes("astronaut"), "face")
    assert limited.value.status_code == 429 and limited.value.code == "rate_limited"
    assert limited.value.retry_after and limited.value.retry_after >= 1
    # When a client with the default policy submits again at once
    caplog.set_level(logging.INFO, logger="detectflow.client")
    with Client(api, key) as client:
        start = time.monotonic()
        job = client.submit(image_bytes("astronaut"), "face")
        elapsed = time.monotonic() - start
        # Then it waited for the bucket (Retry-After) instead of failing, and made one job, not one per try
        assert any("HTTP 429" in r.getMessage() for r in caplog.records)
        assert elapsed >= 1.0
        assert [j.id for j in client.list_jobs(limit=10).items][0] == job.id
        assert len(client.list_jobs(limit=10).items) == 2


def test_client_rides_out_a_killed_api_and_submits_once(api_env, tmp_path: Path):
    # Given an API on a port, and a client that has used it
    proc, url = start_api(api_env, tmp_path / "api-1.log")
    port = int(url.rsplit(":", 1)[1])
    _, key = _tenant_key(url)
    client = Client(url, key, retry=PATIENT, breaker=CircuitBreaker(failure_threshold=1000))
    first = client.submit(image_bytes("astronaut"), "face")
    # When the API is killed, and started again on the same port a second later
    proc.signal(signal.SIGKILL)
    proc.stop()
    restarted: list[Proc] = []

    def restart() -> None:
        time.sleep(1.0)
        restarted.append(Proc(["api", "--host", "127.0.0.1", "--port", str(port)], api_env, tmp_path / "api-2.log"))

    thread = threading.Thread(target=restart)
    thread.start()
    try:
        # Then a submit made while it is down goes through once it is back
        second = client.submit(image_bytes("coffee"), "face")
        thread.join()
        jobs = client.list_jobs(limit=10).items
        assert [j.id for j in jobs] == [second.id, first.id]
        assert client.get_job(second.id).status is JobStatus.queued
    finally:
        thread.join()
        client.close()
        for p in restarted:
            p.stop()


def test_client_retry_after_a_lost_answer_does_not_duplicate_the_job(api):
    # Given a path to the API that loses the API's first answer (the job is made, the client never hears)
    _, key = _tenant_key(api)
    port = int(api.rsplit(":", 1)[1])
    with LossyProxy(port, drop_answers=1) as proxy, Client(proxy.url, key) as client:
        # When a job is submitted through it
        job = client.submit(image_bytes("astronaut"), "face")
        # Then the client sent it twice with one Idempotency-Key, and the API kept one job
        assert proxy.connections >= 2 and proxy.dropped == 1
        with Client(api, key) as direct:
            assert [j.id for j in direct.list_jobs(limit=10).items] == [job.id]
    # And the answer lost was of a request the API acted on: the same loss without the client makes a job unseen
    with LossyProxy(port, drop_answers=1) as proxy, pytest.raises(httpx.TransportError):
        httpx.post(f"{proxy.url}/v1/jobs", files={"file": ("a.png", image_bytes("astronaut"))}, data={"task": "face"},
                   headers={"Authorization": f"Bearer {key}"})  # fmt: skip
    with Client(api, key) as direct:
        assert len(direct.list_jobs(limit=10).items) == 2


def test_client_breaker_fails_fast_on_a_dead_api(api_env, tmp_path: Path):
    # Given an API that is killed
    proc, url = start_api(api_env, tmp_path / "api.log")
    proc.stop()
    wait_for(lambda: _refused(url), 10, what="the API to be gone")
    client = Client(url, "dfk_x", retry=RetryPolicy(max_attempts=3, backoff_base=0.01))
    # When calls keep failing, then after five consecutive failures the breaker opens and nothing more is sent
    with pytest.raises(Exception):
        client.health()  # 3 tries
    with pytest.raises(CircuitOpenError) as opened:
        client.health()  # tries 4 and 5 open it
    start = time.monotonic()
    with pytest.raises(CircuitOpenError):
        client.health()
    assert time.monotonic() - start < 0.05
    assert 29 < opened.value.retry_in <= 30
    client.close()


def _refused(url: str) -> bool:
    try:
        httpx.get(f"{url}/healthz", timeout=0.5)
    except httpx.ConnectError:
        return True
    return False


def _cli(url: str, key: str, *args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    env = cli_env(api_url=url, api_key=key)
    return subprocess.run([sys.executable, "-m", "detectflow.cli.main", *args], capture_output=True, text=True,
                          env={**env, "COLUMNS": "80"}, timeout=timeout)  # fmt: skip


def test_cli_jobs_commands_on_the_client(api, run_worker):
    # Given a face job that ran and an object job left queued (no object worker)
    run_worker("face")
    _, key = _tenant_key(api)
    with Client(api, key) as client:
        done = client.detect(image_path("astronaut"), "face", timeout=60)
        queued = client.submit(image_path("coffee"), "object")
    # When the CLI reads, waits for, lists and cancels them
    got = _cli(api, key, "jobs", "get", done.id)
    waited = _cli(api, key, "jobs", "wait", done.id, "--timeout", "30")
    still = _cli(api, key, "jobs", "wait", queued.id, "--timeout", "0.5")
    listed = _cli(api, key, "jobs", "list", "--json")
    table = _cli(api, key, "jobs", "list")
    cancelled = _cli(api, key, "jobs", "cancel", queued.id)
    missing = _cli(api, key, "jobs", "get", "0" * 32)
    # Then each prints what it read, with exit codes a script can use
    assert got.returncode == 0 and json.loads(got.stdout)["result"]["detections"][0]["label"] == "face"
    assert waited.returncode == 0 and json.loads(waited.stdout)["status"] == "succeeded"
    assert still.returncode == 3 and json.loads(still.stdout)["status"] == "queued"
    assert [json.loads(line)["id"] for line in listed.stdout.splitlines()] == [queued.id, done.id]
    assert table.returncode == 0 and queued.id[:8] in table.stdout and "succeeded" in table.stdout
    assert cancelled.returncode == 0 and "cancelled" in cancelled.stdout
    assert missing.returncode == 1 and missing.stderr.startswith("job_not_found:")
