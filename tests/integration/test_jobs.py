"""Jobs end to end: real API app, real redis-server, real worker processes running the real model."""

from __future__ import annotations

import json
import time

import cv2
import httpx
import numpy as np
import pytest

from detectflow.cli.up import free_port
from detectflow.models.cards import load_card
from tests.integration.conftest import submit, wait_job
from tests.support.images import image_bytes
from tests.support.processes import wait_for

pytestmark = [pytest.mark.redis, pytest.mark.models]


@pytest.fixture
def storage(each_storage: str) -> str:
    """Every test here runs once per blob store (filesystem, S3)."""
    return each_storage


def test_face_job_succeeds_with_one_face_on_astronaut(client, run_worker):
    # Given a face worker
    run_worker("face")
    # When the astronaut photo is submitted
    resp = submit(client, image_bytes("astronaut"), name="astronaut.png")
    assert resp.status_code == 202
    job = resp.json()
    assert job["status"] == "queued" and job["task"] == "face"
    assert resp.headers["location"].endswith(f"/v1/jobs/{job['id']}")
    assert set(job["links"]) == {"self", "result", "annotated"}
    # Then it succeeds with exactly one face, in pixels of the uploaded image
    done = wait_job(client, job["id"])
    assert done["status"] == "succeeded", done
    result = done["result"]
    assert result["image"] == {"width": 512, "height": 512}
    assert len(result["detections"]) == 1
    face = result["detections"][0]
    assert face["label"] == "face" and face["score"] > 0.9
    box = face["box"]
    # Eileen Collins' face: centre around (225, 120) in the 512x512 image
    assert 170 < box["x"] + box["width"] / 2 < 280 and 60 < box["y"] + box["height"] / 2 < 180
    assert 40 < box["width"] < 160
    assert len(face["landmarks"]) == 5
    assert result["model"]["sha256"] and result["model"]["provider"] == "CPUExecutionProvider"
    t = result["timings_ms"]
    assert 0 < t["inference"] <= t["total"] and t["queued"] >= 0
    assert done["attempts"] == 1 and done["started_at"] and done["finished_at"]


def test_result_model_block_names_the_precision_of_the_file_that_ran(client, run_worker, settings):
    # Given a face worker told to run the int8 CPU file
    run_worker("face", cpu_precision="int8")
    # When the astronaut photo is detected
    done = wait_job(client, submit(client, image_bytes("astronaut"), name="astronaut.png").json()["id"])
    # Then the result names the int8 file: its precision and its sha256, not the fp32 file's
    assert done["status"] == "succeeded", done
    card = load_card(settings.model_dir / "retinaface-mnet025.json")
    assert done["result"]["model"]["precision"] == "int8"
    assert done["result"]["model"]["sha256"] == card.files["cpu_int8"].sha256 != card.files["cpu"].sha256
    assert len(done["result"]["detections"]) == 1


def test_annotated_png_has_the_image_size_and_the_box_drawn(client, run_worker):
    run_worker("face")
    job = submit(client, image_bytes("grace_hopper"), name="hopper.jpg").json()
    done = wait_job(client, job["id"])
    assert done["status"] == "succeeded" and len(done["result"]["detections"]) == 1
    resp = client.get(f"/v1/jobs/{job['id']}/annotated")
    assert resp.status_code == 200 and resp.headers["content-type"] == "image/png"
    annotated = cv2.imdecode(np.frombuffer(resp.content, np.uint8), cv2.IMREAD_COLOR)
    original = cv2.imdecode(np.frombuffer(image_bytes("grace_hopper"), np.uint8), cv2.IMREAD_COLOR)
    assert annotated.shape == original.shape
    assert np.abs(annotated.astype(int) - original.astype(int)).sum() > 0  # something was drawn
    # and the second call is served from the cache, byte-identical
    assert client.get(f"/v1/jobs/{job['id']}/annotated").content == resp.content


def test_idempotency_key_returns_the_same_job(client, run_worker):
    data = image_bytes("astronaut")
    first = submit(client, data, headers={"Idempotency-Key": "upload-42"})
    again = submit(client, data, headers={"Idempotency-Key": "upload-42"})
    assert first.status_code == 202 and again.status_code == 200
    assert again.json()["id"] == first.json()["id"]
    assert again.headers["idempotent-replayed"] == "true"
    # the same key with another image is a client error, not a silent replay
    other = submit(client, image_bytes("coffee"), headers={"Idempotency-Key": "upload-42"})
    assert other.status_code == 422 and other.json()["error"]["code"] == "idempotency_key_reused"
    # and only one job was enqueued: one worker run finishes it once
    run_worker("face")
    done = wait_job(client, first.json()["id"])
    assert done["status"] == "succeeded" and done["attempts"] == 1


def test_cancel_queued_job_is_never_run(client, run_worker, store):
    # Given a job queued while no worker runs
    job = submit(client, image_bytes("astronaut")).json()
    # When it is cancelled
    resp = client.delete(f"/v1/jobs/{job['id']}")
    assert resp.status_code == 200 and resp.json()["status"] == "cancelled"
    # and a worker starts afterwards, with a second job behind it
    run_worker("face")
    later = submit(client, image_bytes("astronaut")).json()
    assert wait_job(client, later["id"])["status"] == "succeeded"
    # Then the cancelled job was skipped, not run
    final = client.get(f"/v1/jobs/{job['id']}").json()
    assert final["status"] == "cancelled" and final["attempts"] == 0 and final["result"] is None
    # and a finished job cannot be cancelled
    resp = client.delete(f"/v1/jobs/{later['id']}")
    assert resp.status_code == 409 and resp.json()["error"]["code"] == "job_not_cancellable"
    wait_for(lambda: store.queue_depth("detect.face") == 0, 10, what="the last ack")


def _end(store, job_id: str) -> None:
    from detectflow.jobs.errors import ErrorCode

    store.start_delivery(job_id, 3)
    assert store.mark_failed(job_id, "face", ErrorCode.worker_error, "ended by the test")[0]


def test_job_expires_a_ttl_after_it_ends(make_client, store):
    client = make_client(job_ttl_seconds=1)
    store.ttl = 1
    job = submit(client, image_bytes("astronaut")).json()
    time.sleep(2.1)  # a backlog older than the TTL: an unfinished job never expires
    assert client.get(f"/v1/jobs/{job['id']}").status_code == 200
    _end(store, job["id"])
    time.sleep(2.1)
    resp = client.get(f"/v1/jobs/{job['id']}")
    assert resp.status_code == 404 and resp.json()["error"]["code"] == "job_not_found"


def test_undecodable_image_fails_with_its_code_and_worker_survives(client, run_worker):
    # A PNG whose chunk structure is intact but whose pixel data is garbage: only decoding finds it.
    data = bytearray(image_bytes("astronaut"))
    idat = data.index(b"IDAT") + 4
    data[idat + 100 : idat + 20000] = bytes(19900)
    worker = run_worker("face")
    bad = submit(client, bytes(data), name="broken.png").json()
    failed = wait_job(client, bad["id"])
    assert failed["status"] == "failed"
    assert failed["error"]["code"] == "invalid_image" and failed["attempts"] == 1
    # the same worker process goes on serving
    good = submit(client, image_bytes("astronaut")).json()
    assert wait_job(client, good["id"])["status"] == "succeeded"
    assert worker.popen.poll() is None


def test_object_task_goes_to_its_own_queue(client, store):
    submit(client, image_bytes("coffee"), task="object")
    assert store.queue_depth("detect.object") == 1
    wait_for(lambda: store.queue_depth("detect.face") == 0, 10, what="the last ack")


def test_readyz_reports_workers_and_provider(client, run_worker):
    body = client.get("/readyz").json()
    assert body["redis"] == "ok" and body["workers"]["face"] == []
    run_worker("face")
    body = client.get("/readyz").json()
    assert len(body["workers"]["face"]) == 1
    assert body["workers"]["face"][0]["provider"] == "CPUExecutionProvider"


def test_readyz_can_require_workers(make_client):
    client = make_client(api_require_workers=True)
    resp = client.get("/readyz")
    assert resp.status_code == 503 and resp.json()["status"] == "no_workers"


def test_metrics_expose_requests_jobs_queue_and_inference(make_client, run_worker):
    # Given an API serving its metrics on a port of their own
    port = free_port()
    client = make_client(api_metrics_port=port)
    assert client.get("/metrics").status_code == 404  # not on the API's port
    run_worker("face")
    job = submit(client, image_bytes("astronaut")).json()
    wait_job(client, job["id"])
    submit(client, image_bytes("coffee"), task="object")
    # the inference histogram is written just after the job's state
    scrape = f"http://127.0.0.1:{port}/metrics"
    text = wait_for(lambda: (t := httpx.get(scrape).text) and 'inference_seconds_count{task="face"} 1.0' in t and t, 5)
    assert 'detectflow_http_requests_total{method="POST",route="/v1/jobs",status="202"}' in text
    assert 'detectflow_jobs_total{state="succeeded"} 1.0' in text
    assert 'detectflow_queue_depth{task="object"} 1.0' in text
    assert 'detectflow_inference_seconds_count{task="face"} 1.0' in text
    assert 'detectflow_workers{task="face"} 1.0' in text


def test_worker_logs_carry_job_and_request_ids(client, run_worker):
    worker = run_worker("face")
    resp = submit(client, image_bytes("astronaut"), headers={"X-Request-ID": "trace-me-123"})
    job_id = resp.json()["id"]
    wait_job(client, job_id)

    def mine() -> list[dict]:
        return [e for e in (json.loads(x) for x in worker.output().splitlines() if x.startswith("{")) if e.get("job_id") == job_id]

    # the worker stores the result before it logs the outcome: a busy machine may print the line after wait_job
    deadline = time.monotonic() + 10
    while not any("succeeded" in e["msg"] for e in mine()) and time.monotonic() < deadline:
        time.sleep(0.05)
    lines = [json.loads(line) for line in worker.output().splitlines() if line.startswith("{")]
    assert mine() and all(entry.get("request_id") == "trace-me-123" for entry in mine())
    assert any("succeeded" in entry["msg"] for entry in mine())
    # a successful job leaves no warning behind (e.g. Dramatiq's "result discarded")
    assert [e["msg"] for e in lines if e["level"] in ("warning", "error")] == []


def test_object_job_finds_the_cup_on_coffee(client, run_worker):
    # Given an object worker (NanoDet-g, COCO labels)
    run_worker("object")
    # When the coffee photo is submitted for objects
    job = submit(client, image_bytes("coffee"), task="object", name="coffee.png").json()
    done = wait_job(client, job["id"])
    # Then a cup is found, in pixels of the 600x400 photo
    assert done["status"] == "succeeded", done
    result = done["result"]
    assert result["image"] == {"width": 600, "height": 400}
    cups = [d for d in result["detections"] if d["label"] == "cup"]
    assert cups and cups[0]["score"] > 0.35
    assert result["model"]["name"] == "nanodet-g"
    assert all("landmarks" not in d for d in result["detections"])


def test_get_with_wait_returns_when_the_job_finishes(client, run_worker):
    run_worker("face")
    job = submit(client, image_bytes("astronaut")).json()
    # long polling: one request that answers as soon as the job is done
    t0 = time.monotonic()
    done = client.get(f"/v1/jobs/{job['id']}", params={"wait": 20}).json()
    assert done["status"] == "succeeded" and time.monotonic() - t0 < 20
    # a second waiter on a finished job answers at once
    assert client.get(f"/v1/jobs/{job['id']}", params={"wait": 20}).json()["status"] == "succeeded"


def test_get_with_wait_times_out_on_a_queued_job(client):
    job = submit(client, image_bytes("astronaut")).json()
    t0 = time.monotonic()
    body = client.get(f"/v1/jobs/{job['id']}", params={"wait": 1}).json()
    assert body["status"] == "queued" and 0.9 < time.monotonic() - t0 < 5
    resp = client.get(f"/v1/jobs/{job['id']}", params={"wait": 31})
    assert resp.status_code == 422 and resp.json()["error"]["code"] == "validation_error"


def test_list_pages_through_jobs_newest_first_with_a_cursor(client):
    # Given five jobs (no worker: they stay queued), one of them cancelled
    ids = [submit(client, image_bytes("coffee"), task="object" if i % 2 else "face").json()["id"] for i in range(5)]
    client.delete(f"/v1/jobs/{ids[0]}")
    # When listing two at a time, following next_cursor
    seen, cursor, pages = [], None, 0
    while True:
        body = client.get("/v1/jobs", params={"limit": 2, **({"cursor": cursor} if cursor else {})}).json()
        assert len(body["items"]) <= 2
        seen += [j["id"] for j in body["items"]]
        pages += 1
        if not (cursor := body["next_cursor"]):
            break
    # Then every job comes once, newest first
    assert seen == ids[::-1] and pages >= 3
    # And the filters narrow the list
    objects = client.get("/v1/jobs", params={"task": "object"}).json()["items"]
    assert [j["id"] for j in objects] == [ids[3], ids[1]]
    cancelled = client.get("/v1/jobs", params={"status": "cancelled"}).json()["items"]
    assert [j["id"] for j in cancelled] == [ids[0]]
    after = client.get(f"/v1/jobs/{ids[2]}").json()["created_at"]
    newer = client.get("/v1/jobs", params={"created_after": after}).json()["items"]
    assert [j["id"] for j in newer] == [ids[4], ids[3]]
    bad = client.get("/v1/jobs", params={"cursor": "not-a-cursor"})
    assert bad.status_code == 422 and bad.json()["error"]["code"] == "validation_error"


def test_list_forgets_expired_jobs(make_client, store):
    client = make_client(job_ttl_seconds=1)
    store.ttl = 1
    old = submit(client, image_bytes("coffee")).json()["id"]
    _end(store, old)
    wait_for(lambda: store.get(old) is None, 5, what="the job to expire")
    new = submit(client, image_bytes("coffee")).json()["id"]
    assert [j["id"] for j in client.get("/v1/jobs").json()["items"]] == [new]
    # the index entry of the expired job went with the next submission
    assert store.client.zcard(store.keys.job_index("default")) == 1


def test_batching_worker_gives_each_job_its_own_detections(client, run_worker):
    # Given a face worker that batches up to 4 inputs of concurrent jobs (16 jobs in hand)
    proc = run_worker("face", worker_max_batch=4, worker_max_batch_delay_ms=20)
    # When one astronaut and one coffee photo alternate, 16 of them submitted at once
    names = ["astronaut", "coffee"] * 8
    ids = [submit(client, image_bytes(n), name=f"{n}.png").json()["id"] for n in names]
    done = [wait_job(client, i) for i in ids]
    # Then every job has the faces of its own photo: one on the astronaut, none on the coffee cup
    assert [d["status"] for d in done] == ["succeeded"] * 16
    assert [len(d["result"]["detections"]) for d in done] == [1, 0] * 8
    # And the worker ran with its batcher (tests/models/test_batching.py shows batches above one form)
    assert "dynamic batching up to 4 inputs" in proc.output()


def test_identical_upload_twice_is_cached_and_succeeds_without_a_worker(client, run_worker, store):
    # Given a job that succeeded on a worker, and then no worker at all
    worker = run_worker("face")
    first = wait_job(client, submit(client, image_bytes("astronaut"), cache="true").json()["id"])
    assert first["status"] == "succeeded" and first["cached"] is False
    worker.stop()
    # When the same image is uploaded again by the same tenant
    resp = submit(client, image_bytes("astronaut"), cache="true")
    # Then it is answered at once from the earlier result, with its own id, and its annotated image renders
    again = resp.json()
    assert resp.status_code == 202 and again["status"] == "succeeded" and again["cached"] is True
    assert again["id"] != first["id"] and again["result"] == first["result"]
    assert client.get(f"/v1/jobs/{again['id']}/annotated").status_code == 200
    # while cache=false queues it for a worker
    opted_out = submit(client, image_bytes("astronaut"), cache="false").json()
    assert opted_out["status"] == "queued" and opted_out["cached"] is False
    print(f"\nFIGURE cached answer without a worker: status {again['status']}, cached {again['cached']}")
