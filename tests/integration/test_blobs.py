"""Blob stores against their real parts (a directory, the versitygw S3 server, redis-server): the contract, expiry, Redis's size."""

from __future__ import annotations

import io
import time

import cv2
import httpx
import numpy as np
import pytest

from detectflow.blobs import BlobExpiry, content_name
from detectflow.blobs.expiry import sweep
from tests.integration.conftest import submit, wait_job
from tests.support.images import image_bytes
from tests.support.processes import wait_for

pytestmark = pytest.mark.redis


@pytest.fixture(params=["filesystem", pytest.param("s3", marks=pytest.mark.s3), "redis"])
def storage(request: pytest.FixtureRequest) -> str:
    """Every blob store, the Redis one included (today's layout, the baseline)."""
    return request.param


def test_blob_store_put_get_exists_delete(blobs):
    name = content_name("inputs", b"hello")
    assert blobs.get(name) is None and not blobs.exists(name)
    blobs.put(name, b"hello")
    blobs.put(name, b"hello")  # content-addressed: a second put is the same blob
    assert blobs.get(name) == b"hello" and blobs.exists(name) and blobs.names() == [name]
    blobs.delete(name)
    blobs.delete(name)
    assert blobs.get(name) is None and blobs.names() == []


def test_blob_store_head_reads_the_first_bytes_only(blobs):
    name = content_name("inputs", b"0123456789")
    assert blobs.head(name, 4) is None
    blobs.put(name, b"0123456789")
    assert blobs.head(name, 4) == b"0123" and blobs.head(name, 100) == b"0123456789" and blobs.head(name, 0) == b""
    empty = content_name("inputs", b"")
    blobs.put(empty, b"")
    assert blobs.head(empty, 4) == b""
    blobs.delete(name)
    blobs.delete(empty)


def test_blob_store_put_stream_of_a_big_blob(blobs):
    data = np.random.default_rng(1).bytes(12 * 1024 * 1024)  # past boto3's 8 MB multipart threshold
    name = content_name("inputs", data)
    blobs.put_stream(name, io.BytesIO(data))
    assert blobs.get(name) == data
    blobs.delete(name)


def test_blob_store_presigned_put_is_s3_only(blobs):
    name = content_name("inputs", b"presigned")
    url = blobs.presign_put(name, 60)
    if blobs.kind != "s3":
        assert url is None
        return
    assert httpx.put(url, content=b"presigned").status_code == 200
    assert blobs.get(name) == b"presigned"
    blobs.delete(name)


def test_blob_sweep_deletes_what_is_due_and_keeps_the_rest(blobs, store, settings):
    # Given two blobs, one due now and one due later, and a name marked twice (the later time wins)
    expiry = BlobExpiry(store.client, settings.redis_prefix)
    old, new = content_name("inputs", b"old"), content_name("inputs", b"new")
    blobs.put(old, b"old")
    blobs.put(new, b"new")
    now = time.time()
    expiry.mark([old, new], now - 1)
    expiry.mark([new], now + 60)
    expiry.mark([new], now + 30)
    # When the sweeper runs
    assert sweep(blobs, expiry, now) == 1
    # Then only the due one is gone, from the store and from the set
    assert blobs.names() == [new] and expiry.expiry(old) is None and expiry.expiry(new) == pytest.approx(now + 60, abs=0.01)
    assert sweep(blobs, expiry, now + 61) == 1 and blobs.names() == []


@pytest.mark.models
def test_blob_no_object_of_a_job_is_left_after_it_expires(make_client, run_worker, blobs):
    # Given an API that sweeps every 0.2 s, jobs kept 4 s after they end (the worker's final transition
    # sets that), and a job with its annotated image
    run_worker("face", job_ttl_seconds=4)
    client = make_client(job_ttl_seconds=4, storage_sweep_interval_seconds=0.2)
    job = submit(client, image_bytes("astronaut")).json()
    assert wait_job(client, job["id"], timeout=3.5)["status"] == "succeeded"
    assert client.get(f"/v1/jobs/{job['id']}/annotated").status_code == 200
    assert len(blobs.names()) == 2  # the input and the annotated PNG
    # When the job expires
    wait_for(lambda: client.get(f"/v1/jobs/{job['id']}").status_code == 404, 10, what="the job to expire")
    # Then the sweeper removes every blob of it
    wait_for(lambda: blobs.names() == [], 5, what="the sweeper to delete the job's blobs")


def _noise_png(megabytes: float, seed: int) -> bytes:
    side = int((megabytes * 1024 * 1024 / 3) ** 0.5)
    noise = np.random.default_rng(seed).integers(0, 256, (side, side, 3), np.uint8)
    return cv2.imencode(".png", noise, [cv2.IMWRITE_PNG_COMPRESSION, 0])[1].tobytes()


def test_blob_fifty_4mb_jobs_grow_redis_used_memory_by_less_than_2mb(make_client, store, storage, blobs):
    # Given an API (no worker: the jobs stay queued) and 50 distinct 4 MB images
    client = make_client(key_burst=100, key_rate_limit_per_second=100, storage_sweep_interval_seconds=0)
    images = [_noise_png(4, seed) for seed in range(50)]
    assert client.get("/v1/jobs").status_code == 200  # the admin key is stored before the measurement
    store.client.execute_command("MEMORY", "PURGE")
    before = store.client.info("memory")["used_memory"]
    # When they are submitted
    for data in images:
        assert submit(client, data).status_code == 202
    grown = store.client.info("memory")["used_memory"] - before
    print(f"\nFIGURE redis used_memory growth for 50 jobs of {len(images[0]) / 2**20:.1f} MB, storage={storage}: "
          f"{grown / 2**20:.2f} MB")  # fmt: skip
    # Then Redis grows by their records only, unless it is the blob store itself (the old layout)
    assert len(blobs.names()) == 50
    if storage == "redis":
        assert grown > 50 * 4 * 1024 * 1024
        for name in blobs.names():
            blobs.delete(name)
    else:
        assert grown < 2 * 1024 * 1024


def test_blob_sweep_cli_deletes_what_is_due(blobs, store, settings, tmp_path):
    import subprocess
    import sys

    from tests.integration.conftest import storage_env
    from tests.support.processes import cli_env

    # Given a blob whose job expired a second ago
    name = content_name("inputs", b"cli")
    blobs.put(name, b"cli")
    BlobExpiry(store.client, settings.redis_prefix).mark([name], time.time() - 1)
    # When `detectflow blobs sweep` runs with the same settings
    env = cli_env(redis_url=settings.redis_url, redis_prefix=settings.redis_prefix, **storage_env(settings))
    out = subprocess.run([sys.executable, "-m", "detectflow.cli.main", "blobs", "sweep"], env=env,
                         capture_output=True, text=True, timeout=60, check=True)  # fmt: skip
    # Then it is gone
    assert f"deleted 1 expired blobs ({settings.storage})" in out.stdout and blobs.names() == []
