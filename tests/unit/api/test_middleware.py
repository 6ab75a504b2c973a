"""Unit tests of the pure-ASGI request middleware, on a bare ASGI app (no Redis)."""

from __future__ import annotations

import asyncio

import httpx

from detectflow.api.metrics import Metrics
from detectflow.api.middleware import MULTIPART_OVERHEAD, RequestContextMiddleware
from detectflow.logs import request_id_var


async def _echo(scope, receive, send):
    body = b""
    while True:
        message = await receive()
        body += message.get("body", b"")
        if not message.get("more_body"):
            break
    rid = (request_id_var.get() or "").encode()
    await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"text/plain")]})
    await send({"type": "http.response.body", "body": rid + b" " + str(len(body)).encode()})


def _call(metrics: Metrics, max_body: int, **kwargs) -> httpx.Response:
    app = RequestContextMiddleware(_echo, metrics=metrics, max_body_bytes=max_body)

    async def go() -> httpx.Response:
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as client:
            return await client.post("/x", **kwargs)

    return asyncio.run(go())


def test_request_id_is_set_in_context_and_echoed():
    resp = _call(Metrics(), 1024, content=b"abc", headers={"X-Request-ID": "req-1"})
    assert resp.headers["x-request-id"] == "req-1"
    assert resp.text == "req-1 3"  # the app saw the same id in its logging context


def test_body_over_the_limit_is_refused_before_the_app_reads_it():
    resp = _call(Metrics(), 1024, content=b"x" * (1024 + MULTIPART_OVERHEAD + 1))
    assert resp.status_code == 413
    body = resp.json()
    assert body["error"]["code"] == "payload_too_large"
    assert body["request_id"] == resp.headers["x-request-id"]


def test_streamed_body_without_length_is_capped_too():
    async def chunks():
        for _ in range((1024 + MULTIPART_OVERHEAD) // 1024 + 2):
            yield b"y" * 1024

    resp = _call(Metrics(), 1024, content=chunks())
    assert resp.status_code == 413 and resp.json()["error"]["code"] == "payload_too_large"


def test_requests_are_counted_by_route_and_status():
    metrics = Metrics()
    _call(metrics, 1024, content=b"a")
    assert metrics.requests.labels("POST", "unmatched", "200")._value.get() == 1


def _timed(metrics: Metrics, body_timeout: float, chunks: list[bytes], pause: float) -> httpx.Response:
    app = RequestContextMiddleware(_echo, metrics=metrics, max_body_bytes=1024, body_timeout=body_timeout)

    async def trickle():
        for chunk in chunks:
            await asyncio.sleep(pause)
            yield chunk

    async def go() -> httpx.Response:
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as client:
            return await client.post("/x", content=trickle())

    return asyncio.run(go())


def test_a_trickled_body_gets_408_at_its_deadline():
    resp = _timed(Metrics(), 0.2, [b"x"] * 10, 0.05)  # 0.5 s in all, the deadline is 0.2 s
    assert resp.status_code == 408
    body = resp.json()
    assert body["error"]["code"] == "request_timeout" and body["request_id"] == resp.headers["x-request-id"]


def test_a_body_arriving_in_time_is_not_cut():
    resp = _timed(Metrics(), 1.0, [b"x"] * 4, 0.02)
    assert resp.status_code == 200 and resp.text.endswith(" 4")


def test_reads_after_the_body_are_not_timed():
    # once the body is whole, the app may wait on receive() (for a disconnect) past the deadline
    async def wait_for_disconnect(scope, receive, send):
        while (await receive()).get("more_body"):
            pass
        message = await receive()
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": message["type"].encode()})

    async def go():
        messages = [{"type": "http.request", "body": b"ab", "more_body": False}]

        async def receive():
            if messages:
                return messages.pop(0)
            await asyncio.sleep(0.3)
            return {"type": "http.disconnect"}

        sent = []

        async def send(message):
            sent.append(message)

        scope = {"type": "http", "method": "POST", "path": "/x", "headers": []}
        app = RequestContextMiddleware(wait_for_disconnect, metrics=Metrics(), max_body_bytes=1024, body_timeout=0.1)
        await app(scope, receive, send)
        return sent

    sent = asyncio.run(go())
    assert sent[0]["status"] == 200 and sent[1]["body"] == b"http.disconnect"
