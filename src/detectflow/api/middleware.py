"""Pure ASGI middleware: request ids, request metrics and the upload size limit."""

from __future__ import annotations

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


class RequestContextMiddleware:
    """Sets X-Request-ID (taken from the request when well-formed), counts requests, caps bodies."""

    def __init__(self, app, metrics: Metrics, max_body_bytes: int) -> None:
        self.app = app
        self.metrics = metrics
        self.max_body = max_body_bytes + MULTIPART_OVERHEAD

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

        try:
            length = headers.get(b"content-length")
            if length is not None and length.isdigit() and int(length) > self.max_body:
                return await self._too_large(send_with_id, rid)
            seen = 0

            async def capped_receive():
                nonlocal seen
                message = await receive()
                if message["type"] == "http.request":
                    seen += len(message.get("body", b""))
                    if seen > self.max_body:
                        raise _TooLarge()
                return message

            try:
                await self.app(scope, capped_receive, send_with_id)
            except _TooLarge:
                await self._too_large(send_with_id, rid)
        finally:
            route = scope.get("route")
            path = getattr(route, "path", None) or "unmatched"
            self.metrics.observe_request(scope["method"], path, status["code"], time.perf_counter() - started)
            request_id_var.reset(token)

    async def _too_large(self, send, rid: str) -> None:
        body = json.dumps(
            {
                "error": {
                    "code": "payload_too_large",
                    "message": f"The request body exceeds {self.max_body - MULTIPART_OVERHEAD} bytes.",
                    "details": {"max_upload_bytes": self.max_body - MULTIPART_OVERHEAD},
                },
                "request_id": rid,
            }
        ).encode()
        await send(
            {
                "type": "http.response.start",
                "status": 413,
                "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()), (b"connection", b"close")],
            }
        )
        await send({"type": "http.response.body", "body": body})
