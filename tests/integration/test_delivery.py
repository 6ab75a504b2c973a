"""No accepted job is lost: worker SIGTERM and SIGKILL mid-batch, redelivery, webhooks."""

from __future__ import annotations

import json
import signal
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from detectflow.webhooks import SIGNATURE_HEADER, verify
from tests.integration.conftest import submit, wait_job
from tests.support.images import image_bytes
from tests.support.processes import start_worker, wait_for

pytestmark = [pytest.mark.redis, pytest.mark.models, pytest.mark.slow]

#: Jobs per batch: enough that a signal lands while work is in flight, bounded for CI.
BATCH = 40


def _statuses(client, ids):
    return [client.get(f"/v1/jobs/{i}").json()["status"] for i in ids]


def _submit_batch(client, n=BATCH):
    data = image_bytes("astronaut")
    return [submit(client, data).json()["id"] for _ in range(n)]


def test_sigterm_mid_batch_finishes_or_requeues_every_job(client, run_worker, store):
    # Given a worker busy with a batch
    ids = _submit_batch(client)
    worker = run_worker("face")
    wait_for(lambda: _statuses(client, ids).count("succeeded") >= 3, 60, what="some progress")
    # When it receives SIGTERM mid-batch
    worker.signal(signal.SIGTERM)
    assert worker.popen.wait(60) == 0, worker.output()[-3000:]
    # Then nothing is left running: the jobs in hand finished, the prefetched ones went back on the queue
    after = _statuses(client, ids)
    assert set(after) <= {"succeeded", "queued"}, after
    assert store.queue_depth("detect.face") == BATCH - after.count("succeeded")
    # And a new worker finishes all of them, each exactly once
    run_worker("face")
    done = [wait_job(client, i, timeout=120) for i in ids]
    assert all(d["status"] == "succeeded" for d in done)
    assert store.job_counts()["succeeded"] == BATCH
    # (the ack follows the status write by a moment)
    wait_for(lambda: store.queue_depth("detect.face") == 0, 10, what="the last ack")


def test_sigkill_mid_batch_jobs_are_recovered_within_seconds(client, run_worker, store, settings):
    # Given a worker busy with a batch
    ids = _submit_batch(client)
    victim = run_worker("face")
    wait_for(lambda: _statuses(client, ids).count("succeeded") >= 3, 60, what="some progress")
    # When it is killed outright (OOM, node loss): its fetched messages are stranded in its acks set
    victim.signal(signal.SIGKILL)
    victim.popen.wait(10)
    # Then a live worker requeues them once the dead one's heartbeat is stale (3 s here), not minutes later
    run_worker("face")
    done = [wait_job(client, i, timeout=60) for i in ids]
    assert all(d["status"] == "succeeded" for d in done), [d["status"] for d in done]
    assert store.job_counts()["succeeded"] == BATCH
    redelivered = [d for d in done if d["attempts"] > 1]
    assert len(redelivered) <= 2  # prefetch 1 per thread: at most the job in hand was re-run
    wait_for(lambda: store.queue_depth("detect.face") == 0, 10, what="the last ack")


def test_redelivered_message_of_finished_job_is_skipped(client, run_worker, store, settings):
    # Given a finished job
    run_worker("face")
    job = submit(client, image_bytes("astronaut")).json()
    assert wait_job(client, job["id"])["status"] == "succeeded"
    # When its message is delivered again (at-least-once delivery)
    from detectflow.jobs.kinds import kind_of
    from detectflow.worker.broker import DramatiqEnqueuer, make_broker

    DramatiqEnqueuer(make_broker(settings, set_global=False)).enqueue(kind_of("face"), job["id"])
    wait_for(lambda: store.queue_depth("detect.face") == 0, 30, what="the duplicate to be consumed")
    # Then the job is not run twice
    again = client.get(f"/v1/jobs/{job['id']}").json()
    assert again["status"] == "succeeded" and again["attempts"] == 1
    assert store.job_counts()["succeeded"] == 1


class _Hook(BaseHTTPRequestHandler):
    received: list[tuple[dict, bytes]] = []
    fail_first = 1

    def do_POST(self):  # noqa: N802 - http.server API
        body = self.rfile.read(int(self.headers["Content-Length"]))
        type(self).received.append((dict(self.headers), body))
        status = 503 if len(type(self).received) <= type(self).fail_first else 204
        self.send_response(status)
        self.end_headers()

    def log_message(self, *args):
        pass


@pytest.fixture
def hook_server():
    _Hook.received = []
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Hook)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/hook"
    server.shutdown()


def test_webhook_is_signed_and_retried_until_delivered(client, run_worker, hook_server, settings):
    # Given a receiver that fails the first delivery
    run_worker("face")
    # When a job with a webhook finishes
    job = submit(client, image_bytes("astronaut"), webhook_url=hook_server).json()
    wait_job(client, job["id"])
    final = wait_for(
        lambda: (j := client.get(f"/v1/jobs/{job['id']}").json())["webhook"]["state"] == "delivered" and j,
        30,
        what="webhook delivery",
    )
    # Then it was retried and recorded in the job
    assert final["webhook"]["attempts"] == 2 and final["webhook"]["last_status_code"] == 204
    assert len(_Hook.received) == 2
    headers, body = _Hook.received[-1]
    payload = json.loads(body)
    assert payload["id"] == job["id"] and payload["status"] == "succeeded"
    assert len(payload["result"]["detections"]) == 1
    # and the receiver can verify the signature with the shared secret
    assert verify(settings.webhook_secret.get_secret_value(), body, headers[SIGNATURE_HEADER])
    assert not verify("wrong-secret", body, headers[SIGNATURE_HEADER])


def test_worker_without_its_model_exits_instead_of_looking_ready(worker_env, store, tmp_path):
    # Given a worker configured with a model file that is not there
    env = {**worker_env, "DETECTFLOW_FACE_MODEL": str(tmp_path / "missing.onnx")}
    proc = start_worker(env, tmp_path / "worker.log", "face")
    try:
        # Then it exits (non-zero, saying why) rather than beating as a ready worker without a model
        code = proc.popen.wait(90)
    finally:
        proc.stop()
    assert code != 0
    assert "cannot load the face model" in proc.output()
    assert store.live_workers("face", 60) == []
