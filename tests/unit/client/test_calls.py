"""The client's request core: image parts, error bodies, and the retry loop over a scripted transport."""

from __future__ import annotations

import asyncio
import io

import httpx
import pytest

from detectflow.client import ApiError, AsyncClient, CircuitBreaker, CircuitOpenError, Client, RetryPolicy
from detectflow.client.calls import api_error, image_part
from detectflow.client.errors import TransportFailed

JOB = {"id": "j1", "task": "face", "status": "queued", "created_at": "2026-12-01T12:00:00Z",
       "links": {"self": "/v1/jobs/j1", "result": "/v1/jobs/j1", "annotated": "/v1/jobs/j1/annotated"}}  # fmt: skip


def test_image_part_reads_paths_bytes_and_binary_files(tmp_path):
    path = tmp_path / "a.jpg"
    path.write_bytes(b"\xff\xd8jpeg")
    assert image_part(path) == ("a.jpg", b"\xff\xd8jpeg")
    assert image_part(str(path), "b.jpg") == ("b.jpg", b"\xff\xd8jpeg")
    assert image_part(b"raw") == ("image", b"raw")
    with path.open("rb") as fh:
        assert image_part(fh) == ("a.jpg", b"\xff\xd8jpeg")
    assert image_part(io.BytesIO(b"mem")) == ("image", b"mem")


def test_image_part_says_urls_are_not_fetched_yet():
    with pytest.raises(ValueError, match="URL"):
        image_part("https://example.org/a.jpg")


def test_image_part_refuses_text_files_and_other_types(tmp_path):
    with pytest.raises(TypeError, match="binary"):
        image_part(io.StringIO("text"))
    with pytest.raises(TypeError):
        image_part(42)  # type: ignore[arg-type]


def test_api_error_reads_the_api_error_body_and_retry_after():
    resp = httpx.Response(429, headers={"Retry-After": "2", "X-Request-ID": "r1"},
                          json={"error": {"code": "rate_limited", "message": "slow down", "details": {"a": 1}}})  # fmt: skip
    err = api_error(resp)
    assert (err.status_code, err.code, err.message, err.details) == (429, "rate_limited", "slow down", {"a": 1})
    assert (err.retry_after, err.request_id) == (2.0, "r1")


def test_api_error_of_a_foreign_body_names_the_status():
    err = api_error(httpx.Response(502, text="<html>bad gateway</html>"))
    assert err.code == "http_502" and "bad gateway" in err.message


class Script:
    """A transport answering from a list: an int status, an httpx exception, or a Response."""

    def __init__(self, *answers) -> None:
        self.answers = list(answers)
        self.requests: list[httpx.Request] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        answer = self.answers.pop(0)
        if isinstance(answer, Exception):
            raise answer
        if isinstance(answer, int):
            return httpx.Response(answer, json={"error": {"code": "x", "message": "m"}}, headers={"Retry-After": "1"})
        return answer


def _client(script: Script, **kw) -> tuple[Client, list[float]]:
    slept: list[float] = []
    client = Client("http://api.test", "k", transport=httpx.MockTransport(script), sleep=slept.append, **kw)
    return client, slept


def test_send_retries_429_and_503_after_retry_after_and_keeps_the_idempotency_key():
    # Given an API that refuses twice, then accepts
    script = Script(429, 503, httpx.Response(202, json=JOB))
    client, slept = _client(script, retry=RetryPolicy(backoff_base=0.0))
    # When a job is submitted
    job = client.submit(b"img", "face")
    # Then it was sent three times with one idempotency key, waiting Retry-After between tries
    assert job.id == "j1"
    assert slept == [1.0, 1.0]
    keys = {r.headers["Idempotency-Key"] for r in script.requests}
    assert len(script.requests) == 3 and len(keys) == 1
    assert script.requests[0].headers["Authorization"] == "Bearer k"


def test_send_retries_connection_errors_then_raises_transport_failed():
    refused = httpx.ConnectError("refused")
    client, slept = _client(Script(*[refused] * 3), retry=RetryPolicy(max_attempts=3))
    with pytest.raises(TransportFailed):
        client.health()
    assert len(slept) == 2


def test_send_does_not_resend_a_key_creation_whose_answer_was_lost():
    client, slept = _client(Script(httpx.ReadError("reset")))
    with pytest.raises(TransportFailed):
        client.create_key("acme", "k")
    assert slept == []


def test_send_raises_api_error_without_retrying_client_errors():
    script = Script(404)
    client, slept = _client(script)
    with pytest.raises(ApiError) as info:
        client.get_job("nope")
    assert info.value.status_code == 404 and slept == [] and len(script.requests) == 1


def test_send_fails_fast_once_the_breaker_opens():
    # Given a breaker that opens after 2 failures and an API that is down
    script = Script(*[httpx.ConnectError("refused")] * 5)
    client, slept = _client(script, breaker=CircuitBreaker(failure_threshold=2), retry=RetryPolicy(max_attempts=5))
    # Then the call stops at the second failure, and the next call sends nothing
    with pytest.raises(CircuitOpenError):
        client.health()
    assert len(script.requests) == 2
    with pytest.raises(CircuitOpenError) as info:
        client.health()
    assert len(script.requests) == 2 and info.value.retry_in > 29


def test_readiness_returns_a_503_body_instead_of_retrying():
    body = {"status": "unavailable", "redis": "unreachable: ConnectionError"}
    client, slept = _client(Script(httpx.Response(503, json=body)))
    assert client.readiness().status == "unavailable" and slept == []


def test_async_client_sends_the_same_calls():
    script = Script(503, httpx.Response(202, json=JOB))
    slept: list[float] = []

    async def sleep(seconds: float) -> None:
        slept.append(seconds)

    async def main():
        async with AsyncClient("http://api.test", "k", transport=httpx.MockTransport(script), sleep=sleep) as client:
            return await client.submit(b"img", "face")

    assert asyncio.run(main()).id == "j1"
    assert len(slept) == 1 and script.requests[0].headers["Idempotency-Key"] == script.requests[1].headers["Idempotency-Key"]


def test_submit_sends_video_options_as_form_fields_and_leaves_unset_ones_out():
    script = Script(httpx.Response(202, json=JOB))
    client, _ = _client(script)
    client.submit(b"video", "face", sample_fps=2.5, max_frames=6, track=False)
    body = script.requests[0].content
    assert b'name="sample_fps"\r\n\r\n2.5' in body and b'name="max_frames"\r\n\r\n6' in body
    assert b'name="track"\r\n\r\nfalse' in body
    assert b"start_ms" not in body and b"end_ms" not in body


def test_submit_sends_the_progress_interval_with_the_webhook():
    script = Script(httpx.Response(202, json=JOB))
    client, _ = _client(script)
    client.submit(b"video", "face", webhook_url="https://hooks.example/df", progress_interval_seconds=2)
    body = script.requests[0].content
    assert b'name="progress_interval_seconds"\r\n\r\n2' in body
    assert b'name="webhook_url"\r\n\r\nhttps://hooks.example/df' in body
