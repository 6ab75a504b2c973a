"""The job model family: the base every form shares, the stored record, and the public view (API and webhooks)."""

from __future__ import annotations

from datetime import UTC, datetime
from enum import StrEnum
from typing import Any, Literal

from pydantic import BaseModel, Field

from detectflow.config import Task
from detectflow.jobs.errors import ErrorCode
from detectflow.jobs.results import DetectionResult
from detectflow.video.models import VideoOptions, VideoProgress, VideoResult
from detectflow.jobs.results_recognition import EmbedResult, EnrolResult, MatchResult, RecognizeResult, VerifyResult

__all__ = [
    "JobStatus",
    "JobError",
    "WebhookState",
    "WaitingFor",
    "JobLinks",
    "JobResult",
    "JobBase",
    "JobRecord",
    "JobPublic",
    "JobPage",
    "utcnow",
]


def utcnow() -> datetime:
    """The current time, timezone-aware UTC."""
    return datetime.now(UTC)


def _is_none(value: object) -> bool:
    return value is None


class JobStatus(StrEnum):
    """Where a job is: ``queued`` (waiting for a worker, again after its worker died), ``running``,
    ``retrying`` (waiting for a retry after a transient error), then one of the final states."""

    queued = "queued"
    running = "running"
    retrying = "retrying"
    succeeded = "succeeded"
    failed = "failed"
    cancelled = "cancelled"

    @property
    def is_final(self) -> bool:
        return self in (JobStatus.succeeded, JobStatus.failed, JobStatus.cancelled)


class JobError(BaseModel):
    """Why a job failed."""

    code: ErrorCode = Field(examples=["invalid_image"])
    message: str = Field(examples=["The image could not be decoded."])


class WebhookState(BaseModel):
    """Delivery state of a job's webhook."""

    url: str
    state: Literal["pending", "delivered", "failed"] = "pending"
    attempts: int = 0
    last_status_code: int | None = None
    last_error: str | None = None
    delivered_at: datetime | None = None
    progress_interval_seconds: float | None = Field(
        None, exclude_if=_is_none, description="Video jobs: a `job.progress` delivery at most this often while running."
    )


class WaitingFor(BaseModel):
    """Why a queued job is not running yet: its pool has no live worker (scaled to zero, a node still
    being provisioned, every worker down)."""

    reason: Literal["capacity"] = "capacity"
    since: datetime = Field(description="Since when the pool has had no live worker (the job's creation if none was ever seen).")
    seconds: float = Field(description="How long the pool has been empty, seconds.")


class JobLinks(BaseModel):
    """Where to read a job and its outputs."""

    self: str
    result: str
    annotated: str

    @classmethod
    def of(cls, job_id: str, base_url: str = "") -> JobLinks:
        base = f"{base_url.rstrip('/')}/v1/jobs/{job_id}"
        return cls(self=base, result=base, annotated=f"{base}/annotated")


#: The result of any kind of job (the union grows with the kinds declared in ``jobs.kinds``).
JobResult = DetectionResult | VideoResult | EmbedResult | RecognizeResult | EnrolResult | VerifyResult | MatchResult


class JobBase(BaseModel):
    """What every form of a job has."""

    id: str = Field(examples=["3f1c9a0e6b7d4e2f8a5b0c1d2e3f4a5b"])
    task: Task = Field(description="The kind of job, as submitted.")
    status: JobStatus = JobStatus.queued
    created_at: datetime = Field(default_factory=utcnow)
    started_at: datetime | None = None
    finished_at: datetime | None = None
    attempts: int = Field(0, description="Deliveries of the job to a worker (retries and redeliveries count).")
    error: JobError | None = Field(None, description="Why the job failed (status `failed`).")
    result: JobResult | None = Field(None, description="The result (status `succeeded`).")
    progress: VideoProgress | None = Field(
        None, exclude_if=_is_none, description="Video jobs while running: frames and segments done, time left."
    )
    waiting_for: WaitingFor | None = Field(
        None, exclude_if=_is_none, description="Set while a queued job waits for a worker of its pool to exist."
    )
    cached: bool = Field(
        False, description="The result is an earlier identical job's (same input, task, model and options), from the cache."
    )


class JobRecord(JobBase):
    """A job as stored (one Redis hash per job): the public fields plus bookkeeping clients never see."""

    tenant: str = Field("default", description="The tenant whose API key submitted the job.")
    webhook: WebhookState | None = None
    options: dict[str, Any] | None = Field(None, description="The kind's validated options (``jobs.kinds``).")
    request_id: str | None = None
    idempotency_key: str | None = None
    crashed_deliveries: int = Field(0, description="Deliveries whose worker died (or was killed) before they ended.")
    image_sha256: str = ""
    image_format: str = ""
    image_width: int = 0
    image_height: int = 0
    cache: bool = Field(True, description="Whether the job may be answered from, and fills, the result cache.")
    source_url: str | None = Field(None, description="Where the worker fetches the input (instead of an upload).")
    upload_id: str | None = Field(
        None, description="A video upload the worker takes as the input (above `api_max_upload_bytes`: never read by the API)."
    )
    media: Literal["image", "video"] = "image"
    video_options: VideoOptions | None = None
    video_frames_total: int = 0
    video_segments_total: int = 0
    video_frames_done: int = 0
    video_segments_done: int = 0

    def video_progress(self, now: datetime | None = None) -> VideoProgress | None:
        """Progress of a running video job once it is split into segments (None otherwise)."""
        if self.media != "video" or self.status is not JobStatus.running or not self.video_segments_total:
            return None
        eta = None
        if self.video_frames_done and self.started_at is not None:
            elapsed = ((now or utcnow()) - self.started_at).total_seconds()
            left = self.video_frames_total - self.video_frames_done
            eta = round(max(0.0, elapsed / self.video_frames_done * left), 1)
        return VideoProgress(
            frames_done=self.video_frames_done,
            frames_total=self.video_frames_total,
            segments_done=self.video_segments_done,
            segments_total=self.video_segments_total,
            eta_seconds=eta,
        )

    def public(self, base_url: str = "") -> JobPublic:
        """What clients see of this job: the API's answers and the webhook body."""
        shared = {name: getattr(self, name) for name in JobBase.model_fields}  # validated already: no copies
        shared["progress"] = self.video_progress()
        return JobPublic(**shared, webhook=self.webhook, links=JobLinks.of(self.id, base_url))


class JobPublic(JobBase):
    """A job as the API answers it and as webhooks deliver it."""

    links: JobLinks
    webhook: WebhookState | None = Field(
        None, exclude_if=_is_none, description="Delivery state, when the job was submitted with a `webhook_url`."
    )


class JobPage(BaseModel):
    """One page of jobs, newest first."""

    items: list[JobPublic]
    next_cursor: str | None = Field(None, description="Pass as `cursor` for the next page; null on the last page.")
