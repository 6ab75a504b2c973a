"""The API's access log (DETECTFLOW_API_ACCESS_LOG): one line per request, no headers, keys or query strings."""

from __future__ import annotations

import logging
import time

from detectflow.logs import request_id_var

__all__ = ["AccessLogMiddleware", "access_fields"]

log = logging.getLogger("detectflow.access")


def access_fields(scope: dict, status: int, seconds: float) -> dict[str, object]:
    """What the access log records of a request: method, path, status, duration and client address.

    The query string is left out (it may carry secrets: signed URLs, tokens), and so is every header
    (``Authorization`` carries the API key).
    """
    client = scope.get("client")
    route = scope.get("route")
    return {
        "method": scope.get("method", ""),
        "path": scope.get("path", ""),
        "route": getattr(route, "path", None),
        "status": status,
        "duration_ms": round(seconds * 1000, 1),
        "client": client[0] if client else None,
    }


class AccessLogMiddleware:
    """Pure ASGI middleware logging `access_fields` of each HTTP request once its response has started."""

    def __init__(self, app) -> None:
        self.app = app

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        started = time.perf_counter()
        status = {"code": 500}

        async def send_status(message):
            if message["type"] == "http.response.start":
                status["code"] = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_status)
        finally:
            fields = access_fields(scope, status["code"], time.perf_counter() - started)
            log.info('%s %s %s %.1f ms', fields["method"], fields["path"], fields["status"], fields["duration_ms"],
                     extra={"fields": fields, "request_id": request_id_var.get()})  # fmt: skip
