"""source_url end to end: a real HTTP server on loopback, the real API and worker, the webhooks' SSRF rules."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.integration.conftest import submit, wait_job
from tests.support.images import image_bytes
from tests.support.origins import serve_files

pytestmark = [pytest.mark.redis, pytest.mark.models]


@pytest.fixture
def origin() -> Iterator[str]:
    """An HTTP server on 127.0.0.1: /astronaut.png, /big (2 MB), anything else 404."""
    files = {"/astronaut.png": image_bytes("astronaut"), "/big": bytes(2 * 1024 * 1024)}

    with serve_files(files) as url:
        yield url


def _by_url(client, url: str, **kw):
    return client.post("/v1/jobs", data={"task": "face", "source_url": url, **kw})


def test_source_url_is_fetched_by_the_worker_and_kept_as_the_input(make_client, run_worker, origin):
    # Given an API and a worker that accept http sources (loopback is opened for webhooks in these tests)
    client = make_client(source_allow_http=True)
    run_worker("face", source_allow_http=True, source_max_bytes=1024 * 1024)
    # When jobs name a real image, a file above the worker's cap, and a missing one
    ok, big, missing = (_by_url(client, f"{origin}{p}") for p in ("/astronaut.png", "/big", "/missing"))
    assert ok.status_code == big.status_code == missing.status_code == 202, ok.text
    # Then the image is detected, and the others fail with their codes, once
    done = wait_job(client, ok.json()["id"])
    assert done["status"] == "succeeded" and len(done["result"]["detections"]) == 1
    assert client.get(f"/v1/jobs/{done['id']}/annotated").status_code == 200
    too_large, unreachable = wait_job(client, big.json()["id"]), wait_job(client, missing.json()["id"])
    assert too_large["error"]["code"] == "source_too_large" and too_large["attempts"] == 1
    assert unreachable["error"]["code"] == "source_unreachable" and "404" in unreachable["error"]["message"]


def test_source_url_must_be_https_and_public_by_default(make_client, origin):
    plain = _by_url(make_client(), f"{origin}/astronaut.png")
    assert plain.status_code == 422 and "https" in plain.json()["error"]["message"]
    private = _by_url(make_client(source_allow_http=True, webhook_allow_cidrs=[]), f"{origin}/astronaut.png")
    assert private.status_code == 422 and "public address" in private.json()["error"]["message"]
    both = client_post_both(make_client())
    assert both.status_code == 422


def client_post_both(client):
    return client.post(
        "/v1/jobs", data={"task": "face", "source_url": "https://example.org/a.png"}, files={"file": ("a", b"x")}
    )


def test_source_url_job_is_never_answered_from_the_cache(make_client, run_worker, origin):
    client = make_client(source_allow_http=True)
    run_worker("face", source_allow_http=True)
    first = wait_job(client, _by_url(client, f"{origin}/astronaut.png").json()["id"])
    assert first["status"] == "succeeded"
    # an identical upload of the fetched bytes is not cached from it either (the source job kept nothing)
    again = submit(client, image_bytes("astronaut"), cache="true").json()
    assert again["cached"] is False


def test_fetch_source_caps_by_what_the_first_bytes_are():
    # a loopback origin serving a fake MP4 and a fake image, both 4 kB
    from detectflow.jobs.errors import DetectflowError, ErrorCode
    from detectflow.sources import fetch_source
    from detectflow.webhooks import LOOPBACK_CIDRS, TargetPolicy

    mp4 = b"\x00\x00\x00\x20ftypisom" + bytes(4096)
    png = b"\x89PNG\r\n\x1a\n" + bytes(4096)
    policy = TargetPolicy.of(allow_cidrs=LOOPBACK_CIDRS)

    def limit_for(head: bytes) -> int:
        return 8192 if head[4:8] == b"ftyp" else 1024

    with serve_files({"/v.mp4": mp4, "/i.png": png}) as url:
        assert fetch_source(f"{url}/v.mp4", policy, timeout=5, max_bytes=8192, limit_for=limit_for) == mp4
        with pytest.raises(DetectflowError) as refused:
            fetch_source(f"{url}/i.png", policy, timeout=5, max_bytes=8192, limit_for=limit_for)
        assert refused.value.code is ErrorCode.source_too_large and "1024" in refused.value.message
