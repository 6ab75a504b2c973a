"""Uploads through the real API and workers: upload URLs (pre-signed S3 or the API's), the decoder's re-check, big PNGs."""

from __future__ import annotations

import hashlib
from pathlib import Path

import httpx
import numpy as np
import pytest

from detectflow.blobs import input_name
from tests.integration.conftest import storage_env, submit, wait_job
from tests.support.images import image_bytes
from tests.support.processes import AUTH, cli_env, start_api

pytestmark = [pytest.mark.redis, pytest.mark.models]


@pytest.fixture
def storage(each_storage: str) -> str:
    """Every test here runs once per blob store (filesystem, S3)."""
    return each_storage


def test_worker_fails_an_image_its_decoder_finds_too_large(client, run_worker):
    # Given an API that accepted a 512 x 512 image from its header, and a worker allowed 100,000 pixels
    # (the two disagree as they would when the header the API read lies to it)
    run_worker("face", api_max_image_pixels=100_000)
    job = submit(client, image_bytes("astronaut")).json()
    # When the worker decodes it
    done = wait_job(client, job["id"])
    # Then the job fails as image_too_large, once, not as a worker error after retries
    assert done["status"] == "failed" and done["attempts"] == 1
    assert done["error"]["code"] == "image_too_large"


def test_annotated_png_above_the_bound_is_served_but_not_cached(make_client, run_worker, store):
    # Given a succeeded job and an API that caches annotated PNGs of at most 1,000 bytes
    run_worker("face")
    client = make_client(api_annotated_cache_max_bytes=1_000)
    job = submit(client, image_bytes("astronaut")).json()
    assert wait_job(client, job["id"])["status"] == "succeeded"
    # When its annotated image is asked for, twice
    first, again = (client.get(f"/v1/jobs/{job['id']}/annotated") for _ in range(2))
    # Then both answers are the PNG, and Redis never held it
    assert first.status_code == again.status_code == 200 and first.content == again.content
    assert len(first.content) > 1_000 and first.content.startswith(b"\x89PNG")
    assert store.client.exists(store.keys.annotated(job["id"])) == 0
    # while under the default bound it is kept
    assert make_client().get(f"/v1/jobs/{job['id']}/annotated").status_code == 200
    assert store.client.exists(store.keys.annotated(job["id"])) == 1


def _put(up: dict, body, headers: dict[str, str] | None = None) -> httpx.Response:
    """PUT ``body`` where the upload says: straight to S3 (pre-signed, no key) or to the API (with the key)."""
    auth = {} if up["presigned"] else AUTH
    return httpx.put(up["url"], content=body, headers={**auth, **(headers or {})}, timeout=120)


def test_upload_then_submit_by_upload_id(make_client, run_worker, blobs, storage, settings):
    # Given an API served over real HTTP (the upload URL must be reachable) and a worker
    proc, api = start_api(cli_env(redis_url=settings.redis_url, redis_prefix=settings.redis_prefix,
                                  **storage_env(settings)), settings.state_dir.parent / "api.log")  # fmt: skip
    try:
        run_worker("face")
        with httpx.Client(base_url=api, headers=AUTH, timeout=30) as client:
            # When an upload is made and the image PUT to its URL
            up = client.post("/v1/uploads").json()
            assert up["presigned"] is (storage == "s3") and len(up["upload_id"]) == 64
            assert _put(up, image_bytes("astronaut")).status_code == 200
            # and a job names it
            resp = client.post("/v1/jobs", data={"task": "face", "upload_id": up["upload_id"], "cache": "false"})
            # Then the job runs on the uploaded image, and the upload is consumed
            assert resp.status_code == 202, resp.text
            done = wait_job(client, resp.json()["id"])
            assert done["status"] == "succeeded" and len(done["result"]["detections"]) == 1
            assert blobs.names() == [input_name(hashlib.sha256(image_bytes("astronaut")).hexdigest())]
            again = client.post("/v1/jobs", data={"task": "face", "upload_id": up["upload_id"]})
            assert again.status_code == 404 and again.json()["error"]["code"] == "upload_not_found"
    finally:
        proc.stop()


def test_upload_belongs_to_its_tenant_and_a_job_takes_one_source(client, storage):
    up = client.post("/v1/uploads").json()
    other = client.post("/v1/keys", json={"name": "other", "tenant": "other", "scopes": ["jobs:write", "jobs:read"]})
    stranger = {"Authorization": f"Bearer {other.json()['key']}"}
    for headers in (stranger, {}):  # another tenant's upload, and one nothing was PUT to yet
        resp = client.post("/v1/jobs", data={"task": "face", "upload_id": up["upload_id"]}, headers=headers)
        assert resp.status_code == 404 and resp.json()["error"]["code"] == "upload_not_found"
    neither = client.post("/v1/jobs", data={"task": "face"})
    both = client.post("/v1/jobs", data={"task": "face", "upload_id": up["upload_id"]}, files={"file": ("a", b"x")})
    assert neither.status_code == both.status_code == 422


def _rss_bytes(pid: int) -> int:
    status = Path(f"/proc/{pid}/status").read_text()
    return int(next(line.split()[1] for line in status.splitlines() if line.startswith("VmRSS:"))) * 1024


def test_upload_of_200mb_leaves_the_api_rss_within_50mb(settings, storage, blobs, tmp_path):
    # Given a real API process, settled
    env = cli_env(redis_url=settings.redis_url, redis_prefix=settings.redis_prefix, **storage_env(settings))
    proc, api = start_api(env, tmp_path / "api.log")
    try:
        with httpx.Client(base_url=api, headers=AUTH, timeout=30) as client:
            up = client.post("/v1/uploads").json()
            before = _rss_bytes(proc.pid)
            # When a 200 MB file is uploaded, sent in 1 MB chunks (the test never holds it either)
            chunk = np.random.default_rng(3).bytes(1024 * 1024)
            peak = [before]

            def body():
                for i in range(200):
                    if i % 20 == 0:
                        peak.append(_rss_bytes(proc.pid))
                    yield chunk

            size = 200 * len(chunk)
            resp = _put(up, body(), {"Content-Length": str(size)})
            peak.append(_rss_bytes(proc.pid))
            grown = max(peak) - before
            print(f"\nFIGURE API RSS growth during a 200 MB upload (storage={storage}, presigned={up['presigned']}): "
                  f"{grown / 2**20:.1f} MB")  # fmt: skip
            # Then it is stored whole, and the API grew by less than 50 MB
            assert resp.status_code == 200, resp.text
            assert blobs.size(f"uploads/{up['upload_id']}") == size
            assert grown < 50 * 1024 * 1024
            # and a job cannot take it as an image: refused from its size, before a byte is read
            job = client.post("/v1/jobs", data={"task": "face", "upload_id": up["upload_id"]})
            assert job.status_code == 413 and job.json()["error"]["code"] == "payload_too_large"
    finally:
        proc.stop()
