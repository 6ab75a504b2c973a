"""Stable error codes and the error that carries one (raised by the service, rendered by the API, stored by workers)."""

from __future__ import annotations

from enum import StrEnum
from typing import Any

__all__ = ["ErrorCode", "DetectflowError", "HTTP_STATUS", "JOB_FAILURE_CODES", "video_options_on_image"]


class ErrorCode(StrEnum):
    """Stable error codes: clients may switch on them."""

    invalid_image = "invalid_image"
    invalid_video = "invalid_video"
    video_too_long = "video_too_long"
    video_too_large = "video_too_large"
    unsupported_media_type = "unsupported_media_type"
    payload_too_large = "payload_too_large"
    request_timeout = "request_timeout"
    image_too_large = "image_too_large"
    validation_error = "validation_error"
    idempotency_key_reused = "idempotency_key_reused"
    webhooks_disabled = "webhooks_disabled"
    job_not_found = "job_not_found"
    job_not_finished = "job_not_finished"
    job_not_cancellable = "job_not_cancellable"
    queue_full = "queue_full"
    unauthorized = "unauthorized"
    forbidden = "forbidden"
    rate_limited = "rate_limited"
    quota_exceeded = "quota_exceeded"
    key_not_found = "key_not_found"
    gallery_not_found = "gallery_not_found"
    subject_not_found = "subject_not_found"
    face_not_found = "face_not_found"
    match_batch_too_large = "match_batch_too_large"
    embedding_dimension_mismatch = "embedding_dimension_mismatch"
    upload_not_found = "upload_not_found"
    not_found = "not_found"
    method_not_allowed = "method_not_allowed"
    service_unavailable = "service_unavailable"
    internal_error = "internal_error"
    # job failure reasons
    image_expired = "image_expired"
    source_unreachable = "source_unreachable"
    source_too_large = "source_too_large"
    model_error = "model_error"
    timeout = "timeout"
    worker_error = "worker_error"
    no_face = "no_face"
    worker_crashed = "worker_crashed"
    no_capacity = "no_capacity"


#: HTTP status of each request error code.
HTTP_STATUS: dict[ErrorCode, int] = {
    ErrorCode.invalid_image: 400,
    ErrorCode.invalid_video: 400,
    ErrorCode.video_too_long: 422,
    ErrorCode.video_too_large: 413,
    ErrorCode.unsupported_media_type: 415,
    ErrorCode.payload_too_large: 413,
    ErrorCode.request_timeout: 408,
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
    ErrorCode.unauthorized: 401,
    ErrorCode.forbidden: 403,
    ErrorCode.rate_limited: 429,
    ErrorCode.quota_exceeded: 429,
    ErrorCode.key_not_found: 404,
    ErrorCode.gallery_not_found: 404,
    ErrorCode.subject_not_found: 404,
    ErrorCode.face_not_found: 404,
    ErrorCode.match_batch_too_large: 413,
    ErrorCode.embedding_dimension_mismatch: 422,
    ErrorCode.upload_not_found: 404,
    ErrorCode.service_unavailable: 503,
    ErrorCode.internal_error: 500,
}

#: Codes that end a job as ``failed`` (``job.error.code``), as opposed to refusing a request.
JOB_FAILURE_CODES = frozenset(
    {
        ErrorCode.invalid_image,
        ErrorCode.image_too_large,
        ErrorCode.invalid_video,
        ErrorCode.video_too_long,
        ErrorCode.video_too_large,
        ErrorCode.image_expired,
        ErrorCode.source_unreachable,
        ErrorCode.source_too_large,
        ErrorCode.model_error,
        ErrorCode.timeout,
        ErrorCode.worker_error,
        ErrorCode.no_face,
        ErrorCode.gallery_not_found,
        ErrorCode.subject_not_found,
        ErrorCode.embedding_dimension_mismatch,
        ErrorCode.worker_crashed,
        ErrorCode.no_capacity,
    }
)


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


def video_options_on_image() -> DetectflowError:
    """``validation_error`` for video options sent with an image (found at submit, or by the worker for a reference)."""
    return DetectflowError(
        ErrorCode.validation_error,
        "sample_fps, max_frames, start_ms, end_ms and track apply to video files only.",
        {"field": "sample_fps"},
    )
