"""Response schemas of API v1 (documented at /docs)."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel

__all__ = ["JobPublic", "ErrorBody", "ErrorResponse", "JobResult", "Links"]


class Links(BaseModel):
    self: str
    result: str
    annotated: str


class BoxOut(BaseModel):
    x: float
    y: float
    width: float
    height: float


class Point(BaseModel):
    x: float
    y: float


class DetectionOut(BaseModel):
    label: str
    score: float
    box: BoxOut
    landmarks: list[Point] | None = None


class ModelOut(BaseModel):
    name: str
    version: str
    sha256: str
    provider: str


class JobResult(BaseModel):
    image: dict[str, int]
    detections: list[DetectionOut]
    model: ModelOut
    timings_ms: dict[str, float]


class JobErrorOut(BaseModel):
    code: str
    message: str


class WebhookOut(BaseModel):
    url: str
    state: Literal["pending", "delivered", "failed"]
    attempts: int
    last_status_code: int | None = None
    last_error: str | None = None
    delivered_at: datetime | None = None


class JobPublic(BaseModel):
    id: str
    status: Literal["queued", "running", "succeeded", "failed", "cancelled"]
    task: Literal["face", "object"]
    created_at: datetime
    started_at: datetime | None = None
    finished_at: datetime | None = None
    attempts: int = 0
    error: JobErrorOut | None = None
    result: JobResult | None = None
    links: Links
    webhook: WebhookOut | None = None


class ErrorBody(BaseModel):
    code: str
    message: str
    details: dict[str, Any] = {}


class ErrorResponse(BaseModel):
    error: ErrorBody
    request_id: str | None
