"""Pure ASGI middleware: request ids, request metrics, the upload size limit and the body timeout."""

from __future__ import annotations

import asyncio
import json
import re
import time
import uuid

from detectflow.api.metrics import Metrics
from detectflow.logs import request_id_var

__all__ = ["RequestContextMiddleware"]

_VALID_ID = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")
#: Room for multipart framing and form fields above the file size limit (bytes).
MULTIPART_OVERHEAD = 64 * 1024


class _TooLarge(Exception):
    pass


class _TooSlow(BaseException):
    """Raised from ``receive``; a BaseException so FastAPI's body parsing (``except Exception``: 400) lets it through."""


class RequestContextMiddleware:
    """Sets X-Request-ID (taken from the request when well-formed), counts requests, caps bodies.

    A body must arrive whole within ``body_timeout`` seconds of the first read (a client trickling
    it gets 408 `request_timeout`); once it has, the app's later reads (waiting for a disconnect)
    are not timed.
    """

    def __init__(
        self,
        app,
        metrics: Metrics,
        max_body_bytes: int,
        body_timeout: float | None = None,
        large_bodies: dict[str, tuple[int, float]] | None = None,
    ) -> None:
        self.app = app
        self.metrics = metrics
        self.max_body = max_body_bytes + MULTIPART_OVERHEAD
        self.body_timeout = body_timeout
        #: path prefix -> (most body bytes, body timeout): the streamed uploads' own bounds
        self.large_bodies = large_bodies or {}

    def _bounds(self, path: str) -> tuple[int, float | None]:
        for prefix, (max_bytes, timeout) in self.large_bodies.items():
            if path.startswith(prefix):
                return max_bytes + MULTIPART_OVERHEAD, timeout
        return self.max_body, self.body_timeout

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        headers = dict(scope.get("headers") or ())
        rid = headers.get(b"x-request-id", b"").decode("latin-1")
        if not _VALID_ID.match(rid):
            rid = uuid.uuid4().hex
        token = request_id_var.set(rid)
        started = time.perf_counter()
        status = {"code": 500}

        async def send_with_id(message):
            if message["type"] == "http.response.start":
                status["code"] = message["status"]
                message.setdefault("headers", [])
                message["headers"] = list(message["headers"]) + [(b"x-request-id", rid.encode())]
            await send(message)

        max_body, body_timeout = self._bounds(scope.get("path", ""))
        try:
            length = headers.get(b"content-length")
            if length is not None and length.isdigit() and int(length) > max_body:
                return await self._too_large(send_with_id, rid, max_body)
            seen, deadline, complete = 0, None, False
            loop = asyncio.get_running_loop()

            async def capped_receive():
                nonlocal seen, deadline, complete
                if complete or body_timeout is None:
                    message = await receive()
                else:
                    deadline = deadline or loop.time() + body_timeout
                    try:
                        async with asyncio.timeout_at(deadline):
                            message = await receive()
                    except TimeoutError:
                        raise _TooSlow() from None
                if message["type"] == "http.request":
                    seen += len(message.get("body", b""))
                    complete = not message.get("more_body", False)
                    if seen > max_body:
                        raise _TooLarge()
                return message

            try:
                await self.app(scope, capped_receive, send_with_id)
            except _TooLarge:
                await self._too_large(send_with_id, rid, max_body)
            except _TooSlow:
                await self._error(
                    send_with_id, rid, 408, "request_timeout",
                    f"The request body did not arrive within {body_timeout:g} s.", {},
                )  # fmt: skip
        finally:
            route = scope.get("route")
            path = getattr(route, "path", None) or "unmatched"
            self.metrics.observe_request(scope["method"], path, status["code"], time.perf_counter() - started)
            request_id_var.reset(token)

    async def _too_large(self, send, rid: str, max_body: int) -> None:
        limit = max_body - MULTIPART_OVERHEAD
        await self._error(
            send, rid, 413, "payload_too_large", f"The request body exceeds {limit} bytes.", {"max_upload_bytes": limit}
        )

    async def _error(self, send, rid: str, status: int, code: str, message: str, details: dict) -> None:
        body = json.dumps({"error": {"code": code, "message": message, "details": details}, "request_id": rid}).encode()
        await send(
            {
                "type": "http.response.start",
                "status": status,
                "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()), (b"connection", b"close")],
            }
        )
        await send({"type": "http.response.body", "body": body})
