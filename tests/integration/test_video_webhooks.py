"""A video job's progress webhook against a real receiver on 127.0.0.1: signed, throttled, then the final delivery."""

from __future__ import annotations

import json
import time

import pytest

from detectflow.webhooks import SIGNATURE_HEADER, verify
from tests.integration.conftest import submit, wait_job
from tests.support.images import image_bytes
from tests.support.processes import wait_for
from tests.support.receivers import Answer, Receiver, answer_status
from tests.support.videos import video_bytes

pytestmark = [pytest.mark.redis, pytest.mark.models, pytest.mark.slow]

SECRET = "test-secret"  # the shared settings' webhook secret


def _stamped(arrivals: list[float]) -> Answer:
    """Answer 204 and note when each delivery arrived."""
    ok = answer_status(204)

    def answer(receiver, handler, body):
        arrivals.append(time.monotonic())
        ok(receiver, handler, body)

    return answer


def test_progress_webhook_at_most_every_interval_then_the_final_one(client, run_worker):
    # Given one-frame segments (every carphone frame: 120 segments) and a loopback receiver
    run_worker("face", worker_threads=1, video_segment_frames=1)
    arrivals: list[float] = []
    with Receiver(_stamped(arrivals)) as receiver:
        # When a video job asks for progress at most every second
        submitted = time.monotonic()
        resp = submit(client, video_bytes("carphone_pristine"), name="c.mp4", sample_fps="30",
                      webhook_url=receiver.url(), progress_interval_seconds="1")  # fmt: skip
        assert resp.status_code == 202, resp.text
        assert resp.json()["webhook"]["progress_interval_seconds"] == 1.0
        job = wait_job(client, resp.json()["id"], timeout=180)
        assert job["status"] == "succeeded", job
        wait_for(lambda: client.get(f"/v1/jobs/{job['id']}").json()["webhook"]["state"] == "delivered", 30,
                 what="the final webhook")  # fmt: skip
        time.sleep(0.5)  # a late progress delivery would show here
    # Then some job.progress events came first, each signed, running, its progress growing
    events = [(h.get("X-Detectflow-Event"), json.loads(b), h, b) for _, h, b in receiver.received]
    progress = [e for e in events if e[0] == "job.progress"]
    assert len(progress) >= 2, [e[0] for e in events]
    for _, body, headers, raw in progress:
        assert verify(SECRET, raw, headers[SIGNATURE_HEADER]), "unsigned progress"
        assert body["event"] == "job.progress" and body["status"] == "running" and body["id"] == job["id"]
        assert body["progress"]["frames_total"] == 120 and body["progress"]["segments_total"] == 120
    done = [b["progress"]["frames_done"] for _, b, _, _ in progress]
    assert done == sorted(done) and done[-1] < 120
    # at most one per second while the job ran (claims are 1 s apart; arrivals jitter by a delivery's latency)
    times = [t for t, e in zip(arrivals, events, strict=True) if e[0] == "job.progress"]
    assert len(times) <= (arrivals[-1] - submitted) / 1.0 + 1, (times, submitted)
    assert all(b - a >= 0.5 for a, b in zip(times, times[1:])), times
    gaps = [round(b - a, 2) for a, b in zip(times, times[1:])]
    print(f"\nFIGURE progress webhook (1 s): {len(times)} job.progress deliveries over "
          f"{arrivals[-1] - submitted:.1f} s, gaps {gaps}")  # fmt: skip
    # And the last delivery is the finished job (no progress after it)
    final = events[-1]
    assert final[0] == "job.finished" and final[1]["status"] == "succeeded" and "event" not in final[1]
    assert [e[0] for e in events].count("job.finished") == 1


def test_progress_interval_needs_a_webhook_and_a_sane_value(client):
    clip = video_bytes("carphone_pristine")
    alone = submit(client, clip, name="c.mp4", progress_interval_seconds="5")
    assert (alone.status_code, alone.json()["error"]["details"]["field"]) == (422, "progress_interval_seconds")
    fast = submit(client, clip, name="c.mp4", progress_interval_seconds="0.1", webhook_url="http://127.0.0.1:9/h")
    assert (fast.status_code, fast.json()["error"]["code"]) == (422, "validation_error")
    # an image job takes it too (it just never runs long enough to report progress)
    ok = submit(client, image_bytes("astronaut"), progress_interval_seconds="5", webhook_url="http://127.0.0.1:9/h")
    assert ok.status_code == 202, ok.text
