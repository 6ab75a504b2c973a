"""Uploads through the real API and workers: the worker's decoder re-checks the pixel count; big PNGs stay uncached."""

from __future__ import annotations

import pytest

from tests.integration.conftest import submit, wait_job
from tests.support.images import image_bytes

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
