"""Every documented error code, with real bad files, through the real app on a real Redis."""

from __future__ import annotations

import struct
import zlib

import cv2
import numpy as np
import pytest
from prometheus_client import generate_latest

from tests.integration.conftest import submit
from tests.support.images import image_bytes
from tests.support.processes import AUTH, TEST_ADMIN_KEY


def _png_header_only(width: int, height: int) -> bytes:
    """A PNG whose IHDR claims width x height pixels, with a tiny IDAT and IEND (a decompression bomb)."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\0" * 64)) + chunk(b"IEND", b"")


def _assert_error(resp, status: int, code: str) -> dict:
    assert resp.status_code == status, resp.text
    body = resp.json()
    assert body["error"]["code"] == code
    assert body["error"]["message"]
    assert body["request_id"] == resp.headers["x-request-id"]
    return body


def test_post_truncated_jpeg_is_invalid_image(client):
    # Given a real JPEG cut in half
    data = image_bytes("grace_hopper")
    # When it is uploaded
    resp = submit(client, data[: len(data) // 2], name="hopper.jpg")
    # Then it is refused as invalid, not accepted and failed later
    _assert_error(resp, 400, "invalid_image")


def test_post_truncated_png_is_invalid_image(client):
    data = image_bytes("astronaut")
    _assert_error(submit(client, data[: len(data) - 100], name="a.png"), 400, "invalid_image")


def test_post_text_renamed_png_is_unsupported_media_type(client):
    # The client's file name and Content-Type say PNG; the magic bytes decide.
    resp = client.post(
        "/v1/jobs",
        files={"file": ("notes.png", b"just some text, not an image\n" * 10, "image/png")},
        data={"task": "face"},
    )
    body = _assert_error(resp, 415, "unsupported_media_type")
    assert "image/png" in body["error"]["details"]["supported"]


def test_post_png_bomb_is_image_too_large(client):
    resp = submit(client, _png_header_only(100_000, 100_000), name="bomb.png")
    body = _assert_error(resp, 413, "image_too_large")
    assert body["error"]["details"]["width"] == 100_000


def test_post_empty_upload_is_invalid_image(client):
    _assert_error(submit(client, b"", name="empty.jpg"), 400, "invalid_image")


def test_post_over_size_limit_is_payload_too_large(make_client):
    client = make_client(api_max_upload_bytes=64 * 1024)
    data = image_bytes("astronaut")  # ~ 790 kB
    assert len(data) > 64 * 1024 + 64 * 1024
    _assert_error(submit(client, data), 413, "payload_too_large")


def test_post_just_over_file_limit_is_payload_too_large(make_client):
    # Within the multipart allowance, so the route (not the middleware) must refuse it.
    client = make_client(api_max_upload_bytes=32 * 1024)
    ok, buf = cv2.imencode(".png", np.random.default_rng(0).integers(0, 255, (110, 110, 3), np.uint8))
    assert 32 * 1024 < len(buf) < 96 * 1024
    _assert_error(submit(client, buf.tobytes()), 413, "payload_too_large")


@pytest.mark.parametrize(
    "data, files",
    [({"task": "cats"}, True), ({}, True), ({"task": "face"}, False)],
    ids=["unknown-task", "missing-task", "missing-file"],
)
def test_post_bad_form_is_validation_error(client, data, files):
    kwargs = {"files": {"file": ("a.png", image_bytes("astronaut"))}} if files else {}
    _assert_error(client.post("/v1/jobs", data=data, **kwargs), 422, "validation_error")


def test_post_unparsable_body_is_validation_error_422(client):
    # found by the schema fuzzer: a JSON body that is not UTF-8 was a 400 no operation declares
    resp = client.post("/v1/keys", content=b"\xe9\xff\x05", headers={"Content-Type": "application/json"})
    _assert_error(resp, 422, "validation_error")
    broken = client.post(
        "/v1/jobs", content=b"--b\r\nno headers", headers={"Content-Type": "multipart/form-data; boundary=b"}
    )
    _assert_error(broken, 422, "validation_error")


@pytest.mark.parametrize("value", ["0.0", "1767225600", "-5"])
def test_list_created_after_a_number_is_validation_error(client, value):
    # found by the schema fuzzer: a number was read as a Unix time where RFC 3339 is declared
    _assert_error(client.get("/v1/jobs", params={"created_after": value}), 422, "validation_error")
    assert client.get("/v1/jobs", params={"created_after": "2026-01-01T00:00:00Z"}).status_code == 200


@pytest.mark.parametrize("field, value", [("max_queued_jobs", "1"), ("burst", True), ("rate_limit_per_second", "5")])
def test_create_key_limit_as_a_string_or_boolean_is_validation_error(client, field, value):
    # found by the schema fuzzer: "max_queued_jobs": "1" was coerced where the document declares a number
    body = {"tenant": "strict", "name": "k", "scopes": ["jobs:read"]}
    _assert_error(client.post("/v1/keys", json={**body, field: value}), 422, "validation_error")
    number = 1.5 if field == "rate_limit_per_second" else 1
    assert client.post("/v1/keys", json={**body, field: number}).status_code == 201


def test_post_bad_webhook_url_is_validation_error(client):
    _assert_error(submit(client, image_bytes("astronaut"), webhook_url="ftp://example"), 422, "validation_error")


def test_post_webhook_without_secret_is_refused(make_client):
    client = make_client(webhook_secret=None)
    resp = submit(client, image_bytes("astronaut"), webhook_url="http://127.0.0.1:9/hook")
    _assert_error(resp, 422, "webhooks_disabled")


def test_get_unknown_job_is_job_not_found(client):
    _assert_error(client.get("/v1/jobs/nope"), 404, "job_not_found")
    _assert_error(client.get("/v1/jobs/nope/annotated"), 404, "job_not_found")
    _assert_error(client.delete("/v1/jobs/nope"), 404, "job_not_found")


def test_annotated_before_success_is_job_not_finished(client):
    job = submit(client, image_bytes("astronaut")).json()
    body = _assert_error(client.get(f"/v1/jobs/{job['id']}/annotated"), 409, "job_not_finished")
    assert body["error"]["details"]["status"] == "queued"


def test_unknown_route_and_method_are_structured(client):
    _assert_error(client.get("/v2/nothing"), 404, "not_found")
    _assert_error(client.put("/v1/jobs"), 405, "method_not_allowed")


def test_queue_full_answers_429_with_retry_after(make_client):
    # Given a queue limit of 3 and no worker draining it
    client = make_client(api_max_queue_depth=3)
    for _ in range(3):
        assert submit(client, image_bytes("astronaut")).status_code == 202
    # When one more job arrives
    resp = submit(client, image_bytes("astronaut"))
    # Then it is refused with a hint of when to retry
    body = _assert_error(resp, 429, "queue_full")
    assert int(resp.headers["retry-after"]) >= 1
    assert body["error"]["details"]["queue_depth"] == 3
    # and the other task's queue is unaffected
    assert submit(client, image_bytes("coffee"), task="object").status_code == 202


def test_request_id_is_echoed_or_generated(client):
    resp = client.get("/healthz", headers={"X-Request-ID": "abc-123"})
    assert resp.headers["x-request-id"] == "abc-123"
    generated = client.get("/healthz").headers["x-request-id"]
    assert len(generated) == 32
    # a malformed id is replaced rather than reflected
    assert client.get("/healthz", headers={"X-Request-ID": "bad id\twith spaces"}).headers["x-request-id"] != "bad id"


def test_post_private_webhook_is_validation_error(make_client):
    client = make_client(webhook_allow_cidrs=[])  # the default: no allowlist
    resp = submit(client, image_bytes("astronaut"), webhook_url="http://127.0.0.1:9/hook")
    body = _assert_error(resp, 422, "validation_error")
    assert body["error"]["details"]["field"] == "webhook_url"


def test_redis_down_is_service_unavailable_not_500(settings):
    # Given an API whose Redis is not there
    from fastapi.testclient import TestClient

    from detectflow.api.app import create_app
    from detectflow.cli.up import free_port

    app = create_app(settings.model_copy(update={"redis_url": f"redis://127.0.0.1:{free_port()}/0"}))
    with TestClient(app, raise_server_exceptions=False, headers=AUTH) as client:
        # Then submissions and reads answer 503 with the structured body, and readiness fails
        body = _assert_error(submit(client, image_bytes("astronaut")), 503, "service_unavailable")
        assert body["request_id"]
        _assert_error(client.get("/v1/jobs/x"), 503, "service_unavailable")
        assert client.get("/readyz").status_code == 503
        assert client.get("/healthz").status_code == 200
        assert b"detectflow_http_requests_total" in generate_latest(app.state.metrics.registry)


def test_redis_out_of_memory_is_service_unavailable(tmp_path):
    # Given a real redis-server with a tiny memory limit that refuses writes
    from fastapi.testclient import TestClient

    from detectflow.api.app import create_app
    from detectflow.cli.up import RedisServer
    from detectflow.config import Settings
    from detectflow.jobs.stores.redis import connect

    with RedisServer(tmp_path / "redis", appendonly=False) as server:
        connect(server.url).config_set("maxmemory", "1mb")
        connect(server.url).config_set("maxmemory-policy", "noeviction")
        app = create_app(
            Settings(redis_url=server.url, redis_prefix="oom", webhook_secret="x", admin_key=TEST_ADMIN_KEY,
                     api_metrics_port=0, storage="redis")
        )  # fmt: skip  (images in Redis, so that a few uploads fill it)
        with TestClient(app, raise_server_exceptions=False, headers=AUTH) as client:
            # When uploads stop fitting (the first may still fit under the limit)
            answers = [submit(client, image_bytes("astronaut")) for _ in range(5)]
            # Then they are accepted until Redis is full, and refused with 503 and a reason after: never a 500
            assert {r.status_code for r in answers} <= {202, 503}, [r.text for r in answers]
            resp = answers[-1]
            body = _assert_error(resp, 503, "service_unavailable")
            assert body["error"]["details"]["reason"] == "redis_out_of_memory"
            assert resp.headers["retry-after"] == "30"


def test_unreachable_blob_store_is_service_unavailable(make_client):
    # Given an API whose S3 endpoint has nothing listening
    from detectflow.cli.up import free_port

    client = make_client(storage="s3", storage_s3_bucket="nowhere", storage_s3_endpoint=f"http://127.0.0.1:{free_port()}",
                         storage_s3_region="us-east-1", storage_s3_addressing_style="path")  # fmt: skip
    # When an image is submitted
    resp = submit(client, image_bytes("astronaut"))
    # Then the answer is 503 with a reason, not a 500
    body = _assert_error(resp, 503, "service_unavailable")
    assert body["error"]["details"]["reason"] == "blob_store_unavailable" and resp.headers["retry-after"] == "5"
