"""Reliability of the job lifecycle on the real Redis: delivery cap, retrying, cancel, TTL from the end, the outbox."""

from __future__ import annotations

import pytest
from dramatiq import Message

from detectflow.jobs.errors import ErrorCode
from detectflow.jobs.kinds import kind_of
from detectflow.worker.broker import webhook_message
from tests.integration.conftest import submit, wait_job
from tests.support.faults import FLAKY_SIZE, marker_png
from tests.support.images import image_bytes
from tests.support.processes import wait_for

pytestmark = pytest.mark.redis

FACE = kind_of("face")


def _queued(client, **kw) -> str:
    return submit(client, image_bytes("astronaut"), **kw).json()["id"]


def test_reliability_delivery_cap_counts_deliveries_whose_worker_died(client, store):
    # Given a job delivered once, whose worker then died (it still reads running)
    job_id = _queued(client)
    first = store.start_delivery(job_id, 3)
    assert first.started and first.crashed == 0
    # When it is delivered again and again without ever ending
    second, third = store.start_delivery(job_id, 3), store.start_delivery(job_id, 3)
    assert second.started and second.crashed == 1 and third.started and third.crashed == 2
    # Then the delivery after the third crash is refused: the caller fails it worker_crashed
    fourth = store.start_delivery(job_id, 3)
    assert fourth.capped and not fourth.started and fourth.crashed == 3
    assert store.get(job_id).attempts == 3


def test_reliability_a_started_delivery_returns_the_record_as_started(client, store):
    job_id = _queued(client)
    delivery = store.start_delivery(job_id, 3)
    # the worker runs the job from this record: no second read
    assert delivery.started and delivery.job is not None
    assert delivery.job.id == job_id and delivery.job.status == "running" and delivery.job.attempts == 1
    assert delivery.job == store.get(job_id)


def test_reliability_a_suspect_is_left_running_until_started_again(client, store):
    # Given a job whose worker died under it (it still reads running)
    job_id = _queued(client)
    store.start_delivery(job_id, 3)
    # When a delivery finds it without taking suspects (the worker first holds its shared lock)
    found = store.start_delivery(job_id, 3, suspects=False)
    # Then nothing changed: no crash counted, no attempt, no record
    assert found.suspect and not found.started and not found.capped and found.job is None
    assert store.get(job_id).crashed_deliveries == 0 and store.get(job_id).attempts == 1
    # and the start that follows (under the exclusive lock) counts the crash once
    again = store.start_delivery(job_id, 3)
    assert again.started and again.crashed == 1 and store.get(job_id).attempts == 2
    # a job that is not running is simply started either way
    other = _queued(client)
    assert store.start_delivery(other, 3, suspects=False).started


def test_reliability_the_end_of_a_job_records_its_statistics_and_blob_expiry_in_the_same_step(client, store):
    from detectflow.blobs.base import input_name
    from detectflow.blobs.expiry import BlobExpiry

    expiry = BlobExpiry(store.client, store.keys.prefix)
    hist, completions = store.keys.inference("face"), store.keys.completions("face")
    done, failed = _queued(client), _queued(client)
    blob = input_name(store.get(done).image_sha256)  # both hold the same photo
    submitted = expiry.expiry(blob)
    count0, done0 = int(store.client.hget(hist, "count") or 0), store.client.zcard(completions)
    for job_id in (done, failed):
        store.start_delivery(job_id, 3)
    assert submitted is not None
    later = submitted + 3600
    # When one succeeds (its inference took 30 ms) and one fails, each with the blob's new expiry
    assert store.mark_succeeded(done, {"detections": []}, "face", 0.03, None, later)[0]
    assert store.mark_failed(failed, "face", ErrorCode.worker_error, "x", None, later - 60)[0]
    # Then both completions count for the drain rate, the inference time once (bucket <= 50 ms)
    assert store.client.zcard(completions) == done0 + 2
    assert int(store.client.hget(hist, "count")) == count0 + 1
    assert int(store.client.hget(hist, "b_0.05")) >= 1
    # and the shared input blob keeps the latest of the expiries, above the submission's
    assert expiry.expiry(blob) == pytest.approx(later, abs=0.01)
    # a refused transition records nothing
    assert not store.mark_succeeded(done, {"detections": []}, "face", 0.03, None, later + 60)[0]
    assert expiry.expiry(blob) == pytest.approx(later, abs=0.01) and int(store.client.hget(hist, "count")) == count0 + 1


def test_reliability_retries_do_not_count_as_crashes(client, store):
    job_id = _queued(client)
    for _ in range(5):  # each retry goes running -> retrying -> running
        assert store.start_delivery(job_id, 3).started
        assert store.mark_retrying(job_id)
    assert store.get(job_id).status == "retrying" and store.get(job_id).crashed_deliveries == 0


def test_reliability_unfinished_jobs_never_expire_finished_ones_expire_a_ttl_later(client, store):
    # Given a queued job: its record has no TTL (its input is a blob: tests/integration/test_blobs.py)
    job_id = _queued(client)
    r = store.client
    assert r.ttl(store.keys.job(job_id)) == -1
    # When it ends
    store.start_delivery(job_id, 3)
    assert store.mark_failed(job_id, "face", ErrorCode.worker_error, "ended by the test")[0]
    # Then it expires job_ttl after its end
    assert 0 < r.ttl(store.keys.job(job_id)) <= store.ttl


def test_reliability_cancel_running_and_retrying_jobs(client, store):
    running, retrying = _queued(client), _queued(client)
    store.start_delivery(running, 3)
    store.start_delivery(retrying, 3)
    store.mark_retrying(retrying)
    for job_id in (running, retrying):
        res = client.delete(f"/v1/jobs/{job_id}")
        assert res.status_code == 200 and res.json()["status"] == "cancelled", res.text
    # the worker that was running it reaches its safe point: the result is not stored
    assert store.mark_succeeded(running, {"detections": []}, "face", 0.01) == (False, False)
    assert client.get(f"/v1/jobs/{running}").json()["status"] == "cancelled"
    # and the retry's delivery is skipped
    assert not store.start_delivery(retrying, 3).started
    # a finished job is not cancellable
    assert client.delete(f"/v1/jobs/{running}").status_code == 200  # idempotent
    done = _queued(client)
    store.start_delivery(done, 3)
    store.mark_failed(done, "face", ErrorCode.worker_error, "x")
    assert client.delete(f"/v1/jobs/{done}").json()["error"]["code"] == "job_not_cancellable"


def _webhook_messages(store) -> list[Message]:
    raw = store.client.hvals(store.keys.queue_messages(FACE.webhook_queue))
    return [Message.decode(m) for m in raw]


def test_reliability_final_transition_enqueues_the_webhook_in_the_same_step(client, store, hook_url):
    # Given a running job with a webhook, and one without
    hooked, plain = _queued(client, webhook_url=hook_url), _queued(client)
    for job_id in (hooked, plain):
        store.start_delivery(job_id, 3)
    # When each ends (the worker passes the webhook's message to the transition)
    assert store.mark_succeeded(hooked, {"detections": []}, "face", 0.01, webhook_message(FACE, hooked)) == (True, True)
    assert store.mark_succeeded(plain, {"detections": []}, "face", 0.01, webhook_message(FACE, plain)) == (True, False)
    # Then exactly one webhook message exists, in Dramatiq's format, for the job that has a webhook
    messages = _webhook_messages(store)
    assert [(m.actor_name, m.args) for m in messages] == [(FACE.webhook_actor_name, (hooked,))]
    assert store.client.lrange(store.keys.queue(FACE.webhook_queue), 0, -1) == [
        messages[0].options["redis_message_id"].encode()
    ]
    # and a refused transition (already final) sends nothing more
    assert store.mark_succeeded(hooked, {"detections": []}, "face", 0.01, webhook_message(FACE, hooked))[0] is False
    assert len(_webhook_messages(store)) == 1


@pytest.fixture
def hook_url() -> str:
    return "http://127.0.0.1:9/hook"  # never called: these tests run no worker


@pytest.mark.models
@pytest.mark.slow
def test_reliability_a_job_waiting_for_its_retry_reads_retrying(client, run_worker, store):
    # Given a worker whose detector raises on a marker image (a transient-looking error)
    run_worker(
        "face", worker_detector_factory="tests.support.faults:faulty_detector", worker_max_retries=2,
        worker_min_backoff_ms=800, worker_max_backoff_ms=800,
    )  # fmt: skip
    job_id = submit(client, marker_png(FLAKY_SIZE)).json()["id"]
    # Then between its attempts it reads retrying, never running while no worker holds it
    seen = wait_for(lambda: client.get(f"/v1/jobs/{job_id}").json()["status"] == "retrying", 30, 0.02, what="retrying")
    assert seen
    final = wait_job(client, job_id, timeout=60)
    assert final["status"] == "failed" and final["error"]["code"] == "worker_error" and final["attempts"] == 3


def _probe(directory, max_age: float) -> int:
    import subprocess
    import sys

    return subprocess.run(
        [sys.executable, "-m", "detectflow.worker.probe", str(directory), str(max_age)], capture_output=True
    ).returncode


@pytest.mark.models
@pytest.mark.slow
def test_reliability_worker_probe_passes_while_beating_and_fails_once_wedged(run_worker, tmp_path):
    # Given a real worker touching its heartbeat files (the exec probe rendered into worker pods runs
    # the same command; kwok pods run no containers, so the probe is checked here, on real processes)
    import os
    import signal

    beats = tmp_path / "heartbeat"
    worker = run_worker("face", worker_heartbeat_dir=beats)
    wait_for(lambda: _probe(beats, 3) == 0, 20, 0.2, what="the probe to pass")
    # When every process of it is frozen (as a C call holding the GIL would)
    os.killpg(worker.pid, signal.SIGSTOP)
    try:
        # Then the probe fails within its max age: the kubelet would restart the pod
        wait_for(lambda: _probe(beats, 3) == 1, 15, 0.5, what="the probe to fail")
    finally:
        os.killpg(worker.pid, signal.SIGCONT)
    wait_for(lambda: _probe(beats, 3) == 0, 15, 0.2, what="the probe to pass again")


@pytest.mark.models
@pytest.mark.slow
def test_reliability_worker_recycles_after_max_jobs_without_losing_any(client, run_worker, store):
    # Given a worker that recycles after 5 jobs, and 12 jobs waiting
    from detectflow.cli.supervisor import EXIT_RECYCLED

    ids = [_queued(client) for _ in range(12)]
    worker = run_worker("face", worker_max_jobs_per_process=5, worker_threads=1)
    # When it has run its 5 jobs, it stops as on SIGTERM and exits EXIT_RECYCLED (the supervisor restarts it)
    assert worker.popen.wait(60) == EXIT_RECYCLED, worker.output()[-3000:]
    statuses = [client.get(f"/v1/jobs/{i}").json()["status"] for i in ids]
    assert statuses.count("succeeded") == 5 and statuses.count("queued") == 7, statuses
    # Then its successor runs the rest: nothing lost, nothing run twice
    run_worker("face")
    done = [wait_job(client, i) for i in ids]
    assert [d["status"] for d in done] == ["succeeded"] * 12 and all(d["attempts"] == 1 for d in done)


def test_reliability_queued_job_without_a_worker_waits_for_capacity_then_fails_past_the_bound(make_client):
    import time

    # Given no face worker at all
    client = make_client(job_capacity_wait_seconds=1.0)
    job_id = _queued(client)
    # Then the queued job says what it waits for, and for how long
    seen = client.get(f"/v1/jobs/{job_id}").json()
    assert seen["status"] == "queued" and seen["waiting_for"]["reason"] == "capacity", seen
    assert 0 <= seen["waiting_for"]["seconds"] < 5
    # And past the bound it fails no_capacity instead of waiting forever
    time.sleep(1.2)
    failed = client.get(f"/v1/jobs/{job_id}").json()
    assert failed["status"] == "failed" and failed["error"]["code"] == "no_capacity", failed
    assert "waiting_for" not in failed


@pytest.mark.models
@pytest.mark.slow
def test_reliability_job_held_for_capacity_runs_once_a_worker_comes(client, run_worker):
    job_id = _queued(client)
    assert client.get(f"/v1/jobs/{job_id}").json()["waiting_for"]["reason"] == "capacity"
    run_worker("face")
    done = wait_job(client, job_id)
    assert done["status"] == "succeeded" and "waiting_for" not in done
