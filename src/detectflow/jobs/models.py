"""Job records and the errors that end a job or refuse a request."""

from __future__ import annotations

from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

from pydantic import BaseModel, Field

__all__ = [
    "JobStatus",
    "JobError",
    "WebhookState",
    "JobRecord",
    "ErrorCode",
    "DetectflowError",
    "utcnow",
]


def utcnow() -> datetime:
    """The current time, timezone-aware UTC."""
    return datetime.now(UTC)


class JobStatus(StrEnum):
    queued = "queued"
    running = "running"
    succeeded = "succeeded"
    failed = "failed"
    cancelled = "cancelled"

    @property
    def is_final(self) -> bool:
        return self in (JobStatus.succeeded, JobStatus.failed, JobStatus.cancelled)


class ErrorCode(StrEnum):
    """Stable error codes: clients may switch on them."""

    invalid_image = "invalid_image"
    unsupported_media_type = "unsupported_media_type"
    payload_too_large = "payload_too_large"
    image_too_large = "image_too_large"
    validation_error = "validation_error"
    idempotency_key_reused = "idempotency_key_reused"
    webhooks_disabled = "webhooks_disabled"
    job_not_found = "job_not_found"
    job_not_finished = "job_not_finished"
    job_not_cancellable = "job_not_cancellable"
    queue_full = "queue_full"
    not_found = "not_found"
    method_not_allowed = "method_not_allowed"
    service_unavailable = "service_unavailable"
    internal_error = "internal_error"
    # job failure reasons
    image_expired = "image_expired"
    model_error = "model_error"
    timeout = "timeout"
    worker_error = "worker_error"


#: HTTP status of each request error code.
HTTP_STATUS: dict[ErrorCode, int] = {
    ErrorCode.invalid_image: 400,
    ErrorCode.unsupported_media_type: 415,
    ErrorCode.payload_too_large: 413,
    ErrorCode.image_too_large: 413,
    ErrorCode.validation_error: 422,
    ErrorCode.idempotency_key_reused: 422,
    ErrorCode.webhooks_disabled: 422,
    ErrorCode.job_not_found: 404,
    ErrorCode.not_found: 404,
    ErrorCode.method_not_allowed: 405,
    ErrorCode.job_not_finished: 409,
    ErrorCode.job_not_cancellable: 409,
    ErrorCode.queue_full: 429,
    ErrorCode.service_unavailable: 503,
    ErrorCode.internal_error: 500,
}


class DetectflowError(Exception):
    """An error with a stable code; raised by the service, rendered by the API, stored by workers."""

    def __init__(
        self,
        code: ErrorCode,
        message: str,
        details: dict[str, Any] | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.code = ErrorCode(code)
        self.message = message
        self.details = details or {}
        self.headers = headers or {}

    @property
    def http_status(self) -> int:
        return HTTP_STATUS.get(self.code, 400)


class JobError(BaseModel):
    code: str
    message: str


class WebhookState(BaseModel):
    url: str
    state: str = "pending"  # pending | delivered | failed
    attempts: int = 0
    last_status_code: int | None = None
    last_error: str | None = None
    delivered_at: datetime | None = None


class JobRecord(BaseModel):
    """A job as stored in Redis (one hash per job)."""

    id: str
    task: str
    status: JobStatus = JobStatus.queued
    created_at: datetime = Field(default_factory=utcnow)
    started_at: datetime | None = None
    finished_at: datetime | None = None
    attempts: int = 0
    error: JobError | None = None
    result: dict[str, Any] | None = None
    webhook: WebhookState | None = None
    request_id: str | None = None
    idempotency_key: str | None = None
    image_sha256: str = ""
    image_format: str = ""
    image_width: int = 0
    image_height: int = 0
