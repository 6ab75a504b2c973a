"""The OpenAPI document: declared error answers and headers of each route, clean operation ids."""

from __future__ import annotations

from collections import defaultdict
from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi
from fastapi.routing import APIRoute

from detectflow.api.schemas import ErrorResponse
from detectflow.jobs.errors import HTTP_STATUS, ErrorCode

__all__ = [
    "errors",
    "headers",
    "install_openapi",
    "operation_id",
    "REQUEST_ID_HEADER",
    "RETRY_AFTER_HEADER",
    "RATE_LIMIT_HEADERS",
]

REQUEST_ID_HEADER = {
    "X-Request-ID": {
        "description": "The request's id (the client's own when it sent a well-formed one); also in error bodies and logs.",
        "schema": {"type": "string"},
    }
}
RETRY_AFTER_HEADER = {
    "Retry-After": {"description": "Seconds to wait before retrying.", "schema": {"type": "integer", "minimum": 0}}
}
#: Sent on submissions of keys with a rate limit (IETF RateLimit fields); optional.
RATE_LIMIT_HEADERS = {
    "RateLimit-Policy": {
        "description": 'The key\'s submission policy: `"submit";q=<burst>;w=<seconds to refill>`.',
        "schema": {"type": "string"},
        "required": False,
    },
    "RateLimit": {
        "description": 'What is left: `"submit";r=<submissions left>;t=<seconds until full again>`.',
        "schema": {"type": "string"},
        "required": False,
    },
}

#: One example message per code, for the OpenAPI examples.
_EXAMPLES: dict[ErrorCode, tuple[str, dict[str, Any]]] = {
    ErrorCode.invalid_image: ("The PNG file is truncated.", {}),
    ErrorCode.unsupported_media_type: ("The file is not an image in a supported format.", {}),
    ErrorCode.payload_too_large: ("The file exceeds 20971520 bytes.", {"max_upload_bytes": 20971520}),
    ErrorCode.image_too_large: (
        "The image is 10000x10000 pixels; at most 50000000 pixels are accepted.",
        {"width": 10000, "height": 10000, "max_pixels": 50000000},
    ),
    ErrorCode.invalid_video: ("The video could not be opened: corrupt, truncated or not a video.", {}),
    ErrorCode.video_too_large: (
        "The video is 3840x2160; frames of at most 2073600 pixels are accepted.",
        {"width": 3840, "height": 2160, "max_pixels": 2073600},
    ),
    ErrorCode.video_too_long: (
        "The video lasts 3600.0 s; at most 600 s are accepted.",
        {"duration_ms": 3600000.0, "max_duration_seconds": 600.0},
    ),
    ErrorCode.validation_error: ("task: Input should be 'face' or 'object'", {"errors": []}),
    ErrorCode.idempotency_key_reused: ("This Idempotency-Key was used for a different request.", {}),
    ErrorCode.webhooks_disabled: ("Webhooks are disabled on this server: set DETECTFLOW_WEBHOOK_SECRET.", {}),
    ErrorCode.job_not_found: ("No job 3f1c9a0e6b7d4e2f8a5b0c1d2e3f4a5b (unknown or expired).", {}),
    ErrorCode.not_found: ("Job 3f1c... is not a video job: it has no frames.", {}),
    ErrorCode.job_not_finished: ("Job 3f1c... is running; the annotated image exists once it has succeeded.", {}),
    ErrorCode.job_not_cancellable: ("Job 3f1c... is running: only queued jobs can be cancelled.", {}),
    ErrorCode.queue_full: (
        "The face queue holds 1000 unfinished jobs (limit 1000); retry later.",
        {"queue_depth": 1000, "max_queue_depth": 1000, "retry_after_seconds": 12},
    ),
    ErrorCode.service_unavailable: ("The job store is unreachable; retry shortly.", {}),
    ErrorCode.unauthorized: ("An API key is required: send `Authorization: Bearer <key>`.", {}),
    ErrorCode.forbidden: ("This API key lacks the jobs:write scope.", {"required_scope": "jobs:write"}),
    ErrorCode.rate_limited: (
        "This API key's rate limit (20/s, burst 40) is used up; retry later.",
        {"retry_after_seconds": 1},
    ),
    ErrorCode.quota_exceeded: (
        "This tenant has 1000 unfinished jobs (quota 1000); retry once some finish.",
        {"queued_jobs": 1000, "max_queued_jobs": 1000, "retry_after_seconds": 10},
    ),
    ErrorCode.key_not_found: ("No API key 3b9f0c1d2e4a5b6c7d8e.", {}),
    ErrorCode.internal_error: ("Internal server error.", {}),
}

#: Statuses whose answers carry a header, by status.
_STATUS_HEADERS: dict[int, dict[str, Any]] = {
    401: {"WWW-Authenticate": {"description": "`Bearer` (the scheme to use).", "schema": {"type": "string"}}},
    429: {**RETRY_AFTER_HEADER},
    503: {**RETRY_AFTER_HEADER},
}


def headers(*names: dict[str, Any]) -> dict[str, Any]:
    """Response headers for a ``responses`` entry, X-Request-ID included."""
    out = dict(REQUEST_ID_HEADER)
    for h in names:
        out.update(h)
    return out


def errors(*codes: ErrorCode) -> dict[int | str, dict[str, Any]]:
    """The ``responses`` of a route that can fail with ``codes`` (plus 500 and 503, which any route can).

    Each status lists its codes in the description and gets one example per code.
    """
    by_status: dict[int, list[ErrorCode]] = defaultdict(list)
    for code in (*codes, ErrorCode.internal_error, ErrorCode.service_unavailable):
        if code not in by_status[HTTP_STATUS[code]]:
            by_status[HTTP_STATUS[code]].append(code)
    out: dict[int | str, dict[str, Any]] = {}
    for status in sorted(by_status):
        found = by_status[status]
        examples = {
            c.value: {
                "value": {
                    "error": {"code": c.value, "message": _EXAMPLES[c][0], "details": _EXAMPLES[c][1]},
                    "request_id": "4c1f0f3e9b6a4f0c8d2e1a7b5c3d9e0f",
                }
            }
            for c in found
        }
        out[status] = {
            "model": ErrorResponse,
            "description": "Error: " + ", ".join(f"`{c.value}`" for c in found) + ".",
            "headers": headers(_STATUS_HEADERS.get(status, {})),
            "content": {"application/json": {"examples": examples}},
        }
    return out


def operation_id(route: APIRoute) -> str:
    """The operation id of a route: its function's name (``create_job``, ``get_job``, ...)."""
    return route.name


def _tidy(schema: dict[str, Any]) -> dict[str, Any]:
    """Drop FastAPI's own 422 answer (HTTPValidationError) where a route did not declare one:
    the API answers validation errors with ErrorResponse, and only where a route can fail that way."""
    for path in schema.get("paths", {}).values():
        for operation in path.values():
            answer = operation.get("responses", {}).get("422")
            ref = (((answer or {}).get("content") or {}).get("application/json") or {}).get("schema", {}).get("$ref", "")
            if ref.endswith("/HTTPValidationError"):
                del operation["responses"]["422"]
            for response in operation.get("responses", {}).values():
                response.setdefault("headers", {}).update(
                    {k: v for k, v in REQUEST_ID_HEADER.items() if k not in response["headers"]}
                )
    components = schema.get("components", {}).get("schemas", {})
    for name in ("HTTPValidationError", "ValidationError"):
        components.pop(name, None)
    return schema


def install_openapi(app: FastAPI) -> None:
    """Serve the tidied document at /openapi.json (built once, on first request)."""

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            app.openapi_schema = _tidy(
                get_openapi(
                    title=app.title, version=app.version, description=app.description, routes=app.routes,
                    tags=app.openapi_tags,
                )
            )
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
