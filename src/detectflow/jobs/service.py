"""JobService: submit, read, cancel and annotate jobs; HTTP-free, used by the API routes."""

from __future__ import annotations

import hashlib
import math
import uuid
from typing import NamedTuple, Protocol

from anyio import to_thread

from detectflow.config import Settings, Task
from detectflow.jobs.errors import DetectflowError, ErrorCode
from detectflow.jobs.images import inspect_image
from detectflow.jobs.kinds import JobKind, kind_of
from detectflow.jobs.records import JobPage, JobRecord, JobStatus, WebhookState
from detectflow.jobs.store import Admission, JobFilter, JobStore, QueuedMessage, decode_cursor, encode_cursor
from detectflow.video.container import sniff_container
from detectflow.video.inspect import inspect_video
from detectflow.video.models import VideoOptions
from detectflow.webhooks import INVALID_URL, TargetPolicy, TargetRefused, signing_key, vet_target_async

__all__ = ["Enqueuer", "JobService", "retry_after_seconds", "MAX_PAGE_SIZE", "MAX_SCANNED_PER_PAGE"]

#: Bounds of the Retry-After estimate (seconds).
MIN_RETRY_AFTER, MAX_RETRY_AFTER = 1, 300


#: Most jobs one page of ``GET /v1/jobs`` returns.
MAX_PAGE_SIZE = 100
#: Most job records one page reads before it returns (a sparse filter gives a short page and a cursor).
MAX_SCANNED_PER_PAGE = 1000


#: Tenant of every job when authentication is disabled.
DEFAULT_TENANT = "default"


class _VideoHeader(NamedTuple):
    format: str
    width: int
    height: int


class Enqueuer(Protocol):
    """Builds the queue message of a job (its id only) for the store to send with the job's creation."""

    def message(self, kind: JobKind, job_id: str) -> QueuedMessage: ...


def retry_after_seconds(depth: int, limit: int, drain_per_s: float) -> int:
    """Seconds until the queue should have room again, from the measured drain rate."""
    excess = depth - limit + 1
    if drain_per_s <= 0:
        return 30
    return max(MIN_RETRY_AFTER, min(MAX_RETRY_AFTER, math.ceil(excess / drain_per_s)))


class JobService:
    """The job lifecycle as the API sees it (asyncio: the API's event loop runs it)."""

    def __init__(self, store: JobStore, enqueuer: Enqueuer, settings: Settings) -> None:
        self.store = store
        self.enqueuer = enqueuer
        self.settings = settings

    async def submit(
        self,
        data: bytes,
        task: Task,
        *,
        tenant: str = DEFAULT_TENANT,
        max_queued_jobs: int | None = None,
        webhook_url: str | None = None,
        idempotency_key: str | None = None,
        request_id: str | None = None,
        video: VideoOptions | None = None,
    ) -> tuple[JobRecord, bool]:
        """Validate, admit, store and enqueue a job; returns (job, created): created is False on a replay.

        Raises
        ------
        DetectflowError
            The image's codes, ``idempotency_key_reused``, ``queue_full`` (the kind's queue is at
            ``api_max_queue_depth``) or ``quota_exceeded`` (the tenant has ``max_queued_jobs`` unfinished);
            for a video (``video`` holds its options), the codes of :func:`~detectflow.video.inspect.inspect_video`.
        """
        s = self.settings
        kind = kind_of(task)
        media = await self._media(data, kind, video)
        header = media[1]
        webhook = await self._webhook(webhook_url)
        digest = hashlib.sha256(data).hexdigest()
        fingerprint = f"{kind.task.value}:{digest}"
        if media[0] is not None:  # the same video with other options is another request
            fingerprint += ":" + media[0].model_dump_json()
        job = JobRecord(
            id=uuid.uuid4().hex,
            task=kind.task,
            tenant=tenant,
            webhook=webhook,
            request_id=request_id,
            idempotency_key=idempotency_key,
            image_sha256=digest,
            image_format=header.format,
            image_width=header.width,
            image_height=header.height,
            **({"media": "video", "video_options": media[0]} if media[0] is not None else {}),
        )
        admission = Admission(s.api_max_queue_depth, max_queued_jobs, idempotency_key, fingerprint)
        done = await self.store.submit(job, data, self.enqueuer.message(kind, job.id), admission)
        if done.outcome == "created":
            return job, True
        if done.outcome == "replayed":
            if done.fingerprint != fingerprint:
                raise DetectflowError(
                    ErrorCode.idempotency_key_reused,
                    "This Idempotency-Key was used for a different request.",
                    {"job_id": done.job_id},
                )
            return await self.get(done.job_id, tenant), False
        limit = s.api_max_queue_depth if done.outcome == "queue_full" else max_queued_jobs or done.count
        wait = retry_after_seconds(done.count, limit, await self.store.drain_rate(kind.task.value))
        if done.outcome == "queue_full":
            raise DetectflowError(
                ErrorCode.queue_full,
                f"The {kind.task.value} queue holds {done.count} unfinished jobs (limit {limit}); retry later.",
                {"queue_depth": done.count, "max_queue_depth": limit, "retry_after_seconds": wait},
                headers={"Retry-After": str(wait)},
            )
        raise DetectflowError(
            ErrorCode.quota_exceeded,
            f"This tenant has {done.count} unfinished jobs (quota {max_queued_jobs}); retry once some finish.",
            {"queued_jobs": done.count, "max_queued_jobs": max_queued_jobs, "retry_after_seconds": wait},
            headers={"Retry-After": str(wait)},
        )

    async def _media(self, data: bytes, kind: JobKind, video: VideoOptions | None):
        """(video options or None, header) of an upload: a video by its magic bytes, else an image."""
        s = self.settings
        if sniff_container(data) is None:
            if video is not None:
                raise DetectflowError(
                    ErrorCode.validation_error,
                    "sample_fps, max_frames, start_ms, end_ms and track apply to video files only.",
                    {"field": "sample_fps"},
                )
            return None, inspect_image(data, s.api_max_image_pixels)
        if "video" not in kind.media:
            raise DetectflowError(
                ErrorCode.unsupported_media_type, f"The {kind.task.value} task does not take videos."
            )
        options = video or VideoOptions()
        found = await to_thread.run_sync(inspect_video, data, options, s)  # OpenCV probes a file: off the loop
        return options, _VideoHeader(found.container, found.info.width, found.info.height)

    async def _webhook(self, url: str | None) -> WebhookState | None:
        if not url:
            return None
        if signing_key(self.settings.webhook_secret) is None:
            raise DetectflowError(
                ErrorCode.webhooks_disabled,
                "Webhooks are disabled on this server: set DETECTFLOW_WEBHOOK_SECRET to enable them.",
            )
        s = self.settings
        try:  # resolved off the event loop; the worker resolves again and connects to what it vetted
            await vet_target_async(url, TargetPolicy.of(s.webhook_allow_hosts, s.webhook_allow_cidrs))
        except TargetRefused as exc:
            message = (
                "webhook_url must be an absolute http(s) URL."
                if exc.reason == INVALID_URL
                else "webhook_url must resolve to a public address."  # one answer for private and unknown names
            )
            raise DetectflowError(ErrorCode.validation_error, message, {"field": "webhook_url"}) from None
        return WebhookState(url=url)

    async def get(self, job_id: str, tenant: str = DEFAULT_TENANT) -> JobRecord:
        """A tenant's job; another tenant's is ``job_not_found``, exactly as an unknown one."""
        job = await self.store.get(job_id)
        if job is None or job.tenant != tenant:
            raise DetectflowError(ErrorCode.job_not_found, f"No job {job_id} (unknown or expired).")
        return job

    async def list(
        self,
        limit: int = 20,
        cursor: str | None = None,
        where: JobFilter = JobFilter(),
        base_url: str = "",
        tenant: str = DEFAULT_TENANT,
    ) -> JobPage:
        """One page of a tenant's jobs newest first, from ``cursor`` (a token of an earlier page) on."""
        records, last = await self.store.list_jobs(
            tenant, min(limit, MAX_PAGE_SIZE), decode_cursor(cursor) if cursor else None, where, MAX_SCANNED_PER_PAGE
        )
        return JobPage(
            items=[r.public(base_url) for r in records], next_cursor=encode_cursor(last) if last else None
        )

    async def cancel(self, job_id: str, tenant: str = DEFAULT_TENANT) -> JobRecord:
        """queued -> cancelled (a cancelled job stays cancelled); ``job_not_cancellable`` once it started.

        A running video job can be cancelled too: its segments not yet started are then skipped.
        """
        job = await self.get(job_id, tenant)
        applied, old = await self.store.cancel(job_id, running=job.media == "video")
        if old is None:
            raise DetectflowError(ErrorCode.job_not_found, f"No job {job_id} (unknown or expired).")
        if not applied and old != JobStatus.cancelled:
            raise DetectflowError(
                ErrorCode.job_not_cancellable,
                f"Job {job_id} is {old}: only queued jobs can be cancelled.",
                {"status": old},
            )
        return await self.get(job_id, tenant)

    async def annotated_png(self, job_id: str, tenant: str = DEFAULT_TENANT) -> bytes:
        """The uploaded image with its detections drawn, as PNG (cached after the first call)."""
        job = await self.get(job_id, tenant)
        if job.status is not JobStatus.succeeded:
            raise DetectflowError(
                ErrorCode.job_not_finished,
                f"Job {job_id} is {job.status}; the annotated image exists once it has succeeded.",
                {"status": job.status.value},
            )
        cached = await self.store.annotated(job_id)
        if cached is not None:
            return cached
        from detectflow.jobs.annotated import render_annotated_png

        data = await self.store.image(job_id)
        if data is None:
            raise DetectflowError(ErrorCode.job_not_found, f"The image of job {job_id} has expired.")
        # decoding and drawing take milliseconds of CPU: not on the event loop
        detections = job.result.detections if job.result else []
        png = await to_thread.run_sync(render_annotated_png, data, detections, self.settings.api_max_image_pixels)
        if len(png) <= self.settings.api_annotated_cache_max_bytes:  # a big one is rendered again, not kept
            await self.store.save_annotated(job_id, png)
        return png
