"""API-only bodies: errors and health (the job bodies are the job domain's own models)."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, Field

from detectflow.jobs.errors import ErrorCode

__all__ = ["ErrorBody", "ErrorResponse", "Health", "Readiness", "WorkerSeen", "UploadPublic", "UploadReceived"]


class ErrorBody(BaseModel):
    """What went wrong: a stable code to switch on, a message for people, details for programs."""

    code: ErrorCode
    message: str
    details: dict[str, Any] = Field(default_factory=dict)


class ErrorResponse(BaseModel):
    """Every error answer of the API."""

    error: ErrorBody
    request_id: str | None = Field(description="The X-Request-ID of the request, to quote in bug reports.")


class Health(BaseModel):
    status: Literal["ok"] = "ok"


class WorkerSeen(BaseModel):
    """A worker process that beat recently."""

    id: str
    model: str | None = None
    provider: str | None = None


class Readiness(BaseModel):
    """Whether the API can serve: Redis reachable and, with ``api_require_workers``, a worker per task."""

    status: Literal["ok", "no_workers", "unavailable"]
    redis: str = Field(examples=["ok"])
    workers: dict[str, list[WorkerSeen]] | None = Field(None, description="Live workers by task.")
    queue_depth: dict[str, int] | None = Field(None, description="Unfinished jobs by task.")


class UploadPublic(BaseModel):
    """Where to PUT the file, then pass ``upload_id`` to ``POST /v1/jobs``."""

    upload_id: str = Field(examples=["9b0f...64 hex digits"])
    url: str = Field(description="PUT the file's bytes here (the body is the file, no multipart).")
    method: str = "PUT"
    expires_in: int = Field(description="Seconds the URL may be used.")
    presigned: bool = Field(
        description="`true`: an S3 pre-signed URL, sent without the API key; `false`: the API's, with the key."
    )


class UploadReceived(BaseModel):
    upload_id: str
    size: int = Field(description="Bytes stored.")
