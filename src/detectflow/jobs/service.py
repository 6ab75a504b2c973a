"""JobService: submit, read, cancel and annotate jobs; HTTP-free, used by the API routes."""

from __future__ import annotations

import hashlib
import json
import math
import time
import uuid
from typing import NamedTuple, Protocol

from anyio import to_thread
from pydantic import BaseModel

from detectflow.blobs.base import AsyncBlobs, content_name, input_name, upload_name
from detectflow.blobs.expiry import blob_expires_at
from detectflow.config import Settings, Task
from detectflow.jobs.bundle import pack_images, unpack_images
from detectflow.jobs.capacity import capacity_wait, waited_too_long
from detectflow.jobs.errors import DetectflowError, ErrorCode, video_options_on_image
from detectflow.jobs.images import inspect_image
from detectflow.jobs.kinds import JobKind, kind_of
from detectflow.jobs.records import JobPage, JobRecord, JobStatus, WebhookState, utcnow
from detectflow.jobs.store import Admission, JobFilter, JobStore, QueuedMessage, decode_cursor, encode_cursor
from detectflow.video.container import sniff_container
from detectflow.video.inspect import inspect_video
from detectflow.video.models import VideoOptions
from detectflow.sources import check_source_url
from detectflow.webhooks import INVALID_URL, TargetPolicy, TargetRefused, signing_key, vet_target_async

__all__ = [
    "Enqueuer", "JobService", "retry_after_seconds", "MAX_PAGE_SIZE", "MAX_SCANNED_PER_PAGE",
    "MIN_PROGRESS_INTERVAL_SECONDS",
]  # fmt: skip

#: Bounds of the Retry-After estimate (seconds).
MIN_RETRY_AFTER, MAX_RETRY_AFTER = 1, 300


#: Most jobs one page of ``GET /v1/jobs`` returns.
MAX_PAGE_SIZE = 100
#: Most job records one page reads before it returns (a sparse filter gives a short page and a cursor).
MAX_SCANNED_PER_PAGE = 1000


#: Shortest interval between two progress webhooks of a video job a client may ask for (seconds).
MIN_PROGRESS_INTERVAL_SECONDS = 1.0

#: Tenant of every job when authentication is disabled.
DEFAULT_TENANT = "default"
#: How long a pool seen with a live worker is taken to still have one, seconds, before a poll of a queued
#: job reads its heartbeats again: a worker counts as live for ``api_worker_stale_seconds`` (30) after its
#: last beat anyway, and most polls under load are of queued jobs.
DEFAULT_LIVE_POOL_SECONDS = 1.0


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


def _drawable(result) -> list:
    """The boxes of a result to draw: its detections, or its faces (recognition kinds) labelled by their match."""
    if result is None:
        return []
    if hasattr(result, "detections"):
        return result.detections
    from detectflow.jobs.results import Detection

    out = []
    for f in getattr(result, "faces", None) or []:
        if getattr(f, "box", None) is None or not hasattr(f, "quality"):
            continue
        match = getattr(f, "match", None)
        label = (match.subject_name or match.decision) if match is not None else "face"
        out.append(Detection(label=label, score=f.quality.score, box=f.box, landmarks=f.landmarks))
    return out


class BlobMarker(Protocol):
    """Records when blobs expire (:class:`detectflow.blobs.AsyncBlobExpiry`), for the sweeper."""

    async def mark(self, names: list[str], at: float) -> None: ...


class JobService:
    """The job lifecycle as the API sees it (asyncio: the API's event loop runs it).

    Inputs and annotated images go to ``blobs`` (default: the store the settings name) under
    content-addressed names; ``expiry`` (None: blobs are not tracked, as in unit tests) records
    when each one expires, with its job.
    """

    def __init__(
        self,
        store: JobStore,
        enqueuer: Enqueuer,
        settings: Settings,
        blobs: AsyncBlobs | None = None,
        expiry: BlobMarker | None = None,
        live_pool_seconds: float = DEFAULT_LIVE_POOL_SECONDS,
    ) -> None:
        self.store = store
        self.enqueuer = enqueuer
        self.settings = settings
        if blobs is None:
            from detectflow.blobs.factory import open_blob_store

            blobs = AsyncBlobs(open_blob_store(settings))
        self.blobs = blobs
        self.expiry = expiry
        self.live_pool_seconds = live_pool_seconds
        self._live_until: dict[str, float] = {}  # pool -> time.monotonic() until which it is taken as live

    def blob_expiry(self, job: JobRecord) -> float:
        """When the blobs of ``job`` expire: with its record (see :func:`detectflow.blobs.blob_expires_at`)."""
        return blob_expires_at(self.settings.job_ttl_seconds, job.created_at.timestamp())

    async def _keep(self, job: JobRecord, name: str, data: bytes) -> None:
        # tracked before it is written: a blob whose job is refused (queue full) still expires
        if self.expiry is not None:
            await self.expiry.mark([name], self.blob_expiry(job))
        await self.blobs.put(name, data)

    async def submit(
        self,
        data: bytes | list[bytes],
        task: Task,
        *,
        options: BaseModel | None = None,
        tenant: str = DEFAULT_TENANT,
        max_queued_jobs: int | None = None,
        webhook_url: str | None = None,
        idempotency_key: str | None = None,
        request_id: str | None = None,
        video: VideoOptions | None = None,
        cache: bool = True,
        source_url: str | None = None,
        progress_interval_seconds: float | None = None,
        upload_id: str | None = None,
    ) -> tuple[JobRecord, bool]:
        """Validate, admit, store and enqueue a job; returns (job, created): created is False on a replay.

        A tenant's job identical to one that succeeded within ``result_cache_ttl_seconds`` (same
        input bytes, task, model and options) is created succeeded at once with that result and
        ``cached`` set, without a worker; ``cache=False`` opts out (neither read nor filled). Jobs
        with a webhook or an Idempotency-Key always run (their semantics are the queue's).

        With ``source_url`` (and empty ``data``) the worker fetches the input: the URL is checked
        here (https unless ``source_allow_http``; a public address unless the webhooks' allow lists
        open it) and again, resolved anew, by the worker. With ``upload_id`` (and empty ``data``) the
        job is a video by reference: the worker takes the upload's bytes, checks they are a video,
        and probes it (the API never reads them). Either keeps the video options.

        Raises
        ------
        DetectflowError
            The image's codes, ``idempotency_key_reused``, ``queue_full`` (the kind's queue is at
            ``api_max_queue_depth``) or ``quota_exceeded`` (the tenant has ``max_queued_jobs`` unfinished);
            for a video (``video`` holds its options), the codes of :func:`~detectflow.video.inspect.inspect_video`.
        """
        s = self.settings
        kind = kind_of(task)
        if progress_interval_seconds is not None and not webhook_url:
            raise DetectflowError(
                ErrorCode.validation_error, "progress_interval_seconds needs a webhook_url.",
                {"field": "progress_interval_seconds"},
            )  # fmt: skip
        if source_url is not None or upload_id is not None:
            return await self._submit_reference(source_url, upload_id, kind, tenant, max_queued_jobs, webhook_url,
                                                idempotency_key, request_id, options, progress_interval_seconds,
                                                video)  # fmt: skip
        if isinstance(data, list):  # several images (enrol, verify): one stored bundle
            header = [inspect_image(image, s.api_max_image_pixels) for image in data][0]
            data, video_options = pack_images(data), None
        else:
            video_options, header = await self._media(data, kind, video)
        options_dict = options.model_dump(mode="json", exclude_none=True) if options is not None else None
        webhook = await self._webhook(webhook_url, progress_interval_seconds)
        digest = hashlib.sha256(data).hexdigest()
        fingerprint = f"{kind.task.value}:{digest}"
        if options_dict:  # the same image with other options is another request
            fingerprint += ":" + json.dumps(options_dict, sort_keys=True)
        if video_options is not None:  # the same video with other options too
            fingerprint += ":" + video_options.model_dump_json()
        # options (a gallery, a video's sampling) are not in the cache's key: only plain image jobs are cached
        cache = cache and options_dict is None and video_options is None
        job = JobRecord(
            id=uuid.uuid4().hex,
            task=kind.task,
            tenant=tenant,
            webhook=webhook,
            options=options_dict,
            request_id=request_id,
            idempotency_key=idempotency_key,
            image_sha256=digest,
            image_format=header.format,
            image_width=header.width,
            image_height=header.height,
            **({"media": "video", "video_options": video_options} if video_options is not None else {}),
            cache=cache,
        )
        if cache and webhook is None and idempotency_key is None and s.result_cache_ttl_seconds > 0:
            hit = await self.store.cached(tenant, kind.task.value, job.image_sha256)
            if hit is not None:
                return await self._answer_from(job, hit), True
        await self._keep(job, input_name(job.image_sha256), data)
        return await self._admit(job, kind, max_queued_jobs, fingerprint)

    async def submit_data(
        self,
        data: bytes,
        task: Task,
        *,
        options: BaseModel,
        tenant: str = DEFAULT_TENANT,
        max_queued_jobs: int | None = None,
        webhook_url: str | None = None,
        idempotency_key: str | None = None,
        request_id: str | None = None,
    ) -> tuple[JobRecord, bool]:
        """Admit a job whose input is not media (a ``match`` job's embeddings): stored as is, never cached.

        Raises
        ------
        DetectflowError
            As :meth:`submit`, less the media's codes.
        """
        kind = kind_of(task)
        options_dict = options.model_dump(mode="json", exclude_none=True)
        digest = hashlib.sha256(data).hexdigest()
        job = JobRecord(
            id=uuid.uuid4().hex,
            task=kind.task,
            tenant=tenant,
            webhook=await self._webhook(webhook_url),
            options=options_dict,
            request_id=request_id,
            idempotency_key=idempotency_key,
            image_sha256=digest,
            cache=False,
        )
        fingerprint = f"{kind.task.value}:{digest}:" + json.dumps(options_dict, sort_keys=True)
        await self._keep(job, input_name(digest), data)
        return await self._admit(job, kind, max_queued_jobs, fingerprint)

    async def _submit_reference(
        self, url, upload_id, kind: JobKind, tenant, max_queued_jobs, webhook_url, idempotency_key, request_id,
        options: BaseModel | None = None, progress_interval_seconds: float | None = None,
        video: VideoOptions | None = None,
    ) -> tuple[JobRecord, bool]:
        s = self.settings
        options_dict = options.model_dump(mode="json", exclude_none=True) if options is not None else None
        if url is not None:
            check_source_url(url, s.source_allow_http)
            try:  # the worker resolves again and connects only to what it vetted
                await vet_target_async(url, TargetPolicy.of(s.webhook_allow_hosts, s.webhook_allow_cidrs))
            except TargetRefused:
                raise DetectflowError(
                    ErrorCode.validation_error, "source_url must resolve to a public address.", {"field": "source_url"}
                ) from None
        if video is not None and "video" not in kind.media:
            raise DetectflowError(ErrorCode.unsupported_media_type, f"The {kind.task.value} task does not take videos.")
        if upload_id is not None:  # a video by reference (the route checked the kind and the size)
            video = video or VideoOptions()
        job = JobRecord(
            id=uuid.uuid4().hex,
            task=kind.task,
            tenant=tenant,
            webhook=await self._webhook(webhook_url, progress_interval_seconds),
            options=options_dict,  # a recognize job's gallery and thresholds, as for an uploaded image
            request_id=request_id,
            idempotency_key=idempotency_key,
            cache=False,  # the bytes are unknown until the worker has them
            source_url=url,
            upload_id=upload_id,
            video_options=video,  # a source_url's media is known once fetched: the worker sets it
            **({"media": "video"} if upload_id is not None else {}),
        )
        if upload_id is not None:
            fingerprint = f"{kind.task.value}:upload:{upload_id}"
            if self.expiry is not None:  # the upload now lives as long as its job
                await self.expiry.mark([upload_name(upload_id)], self.blob_expiry(job))
        else:
            fingerprint = f"{kind.task.value}:url:{hashlib.sha256(url.encode()).hexdigest()}"
        if options_dict:
            fingerprint += ":" + json.dumps(options_dict, sort_keys=True)
        if video is not None:
            fingerprint += ":" + video.model_dump_json()
        return await self._admit(job, kind, max_queued_jobs, fingerprint)

    async def _admit(
        self, job: JobRecord, kind: JobKind, max_queued_jobs: int | None, fingerprint: str
    ) -> tuple[JobRecord, bool]:
        s = self.settings
        idempotency_key = job.idempotency_key
        admission = Admission(s.api_max_queue_depth, max_queued_jobs, idempotency_key, fingerprint)
        done = await self.store.submit(job, self.enqueuer.message(kind, job.id), admission)
        if done.outcome == "created":
            return job, True
        if done.outcome == "replayed":
            if done.fingerprint != fingerprint:
                raise DetectflowError(
                    ErrorCode.idempotency_key_reused,
                    "This Idempotency-Key was used for a different request.",
                    {"job_id": done.job_id},
                )
            return await self.get(done.job_id, job.tenant), False
        limit = s.api_max_queue_depth if done.outcome == "queue_full" else max_queued_jobs or done.count
        wait = retry_after_seconds(done.count, limit, await self.store.drain_rate(kind.served_by.value))
        if done.outcome == "queue_full":
            raise DetectflowError(
                ErrorCode.queue_full,
                f"The {kind.served_by.value} queue holds {done.count} unfinished jobs (limit {limit}); retry later.",
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
                raise video_options_on_image()
            return None, inspect_image(data, s.api_max_image_pixels)
        if "video" not in kind.media:
            raise DetectflowError(
                ErrorCode.unsupported_media_type, f"The {kind.task.value} task does not take videos."
            )
        options = video or VideoOptions()
        found = await to_thread.run_sync(inspect_video, data, options, s)  # OpenCV probes a file: off the loop
        return options, _VideoHeader(found.container, found.info.width, found.info.height)
    async def _answer_from(self, job: JobRecord, hit: JobRecord) -> JobRecord:
        now = utcnow()
        done = job.model_copy(
            update={"status": JobStatus.succeeded, "started_at": now, "finished_at": now, "result": hit.result,
                    "cached": True}
        )  # fmt: skip
        if self.expiry is not None:  # the input blob (the earlier job's, same bytes) now lives as long as this job
            await self.expiry.mark([input_name(job.image_sha256)], self.blob_expiry(done))
        await self.store.create_finished(done)
        return done

    async def _webhook(self, url: str | None, progress_interval_seconds: float | None = None) -> WebhookState | None:
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
        return WebhookState(url=url, progress_interval_seconds=progress_interval_seconds)

    async def get(self, job_id: str, tenant: str = DEFAULT_TENANT) -> JobRecord:
        """A tenant's job; another tenant's is ``job_not_found``, exactly as an unknown one."""
        job = await self.store.get(job_id)
        if job is None or job.tenant != tenant:
            raise DetectflowError(ErrorCode.job_not_found, f"No job {job_id} (unknown or expired).")
        return job

    async def get_with_capacity(self, job_id: str, tenant: str = DEFAULT_TENANT) -> JobRecord:
        """:meth:`get`, saying when a queued job waits for its pool to have a worker (``waiting_for``);
        one held longer than ``job_capacity_wait_seconds`` fails ``no_capacity`` here. A pool seen with a
        live worker is taken as live for ``live_pool_seconds`` without reading its heartbeats again."""
        job = await self.get(job_id, tenant)
        if job.status is not JobStatus.queued:
            return job
        pool = kind_of(job.task).served_by.value  # workers beat under their pool's name (recognition serves four kinds)
        if self._live_until.get(pool, 0.0) > time.monotonic():
            return job  # seen with a live worker a moment ago: not waiting for capacity
        live, last_seen = await self.store.pool_state(pool, self.settings.api_worker_stale_seconds)
        if live > 0:
            self._live_until[pool] = time.monotonic() + self.live_pool_seconds
        now = time.time()
        waiting = capacity_wait(job, live, last_seen, now)
        if waited_too_long(job, waiting, now, self.settings.job_capacity_wait_seconds):
            kind = kind_of(job.task)
            webhook = self.enqueuer.webhook_message(kind, job.id) if hasattr(self.enqueuer, "webhook_message") else None
            text = f"No {job.task.value} worker for {waiting.seconds:.0f} s (DETECTFLOW_JOB_CAPACITY_WAIT_SECONDS)."
            await self.store.fail_waiting(job.id, ErrorCode.no_capacity, text, webhook)
            return await self.get(job_id, tenant)
        return job.model_copy(update={"waiting_for": waiting}) if waiting else job

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
        """queued|retrying|running -> cancelled (a cancelled job stays cancelled); ``job_not_cancellable`` once it ended.

        A running job stops at its worker's next safe point: its result is never stored.
        """
        await self.get(job_id, tenant)
        applied, old = await self.store.cancel(job_id)
        if old is None:
            raise DetectflowError(ErrorCode.job_not_found, f"No job {job_id} (unknown or expired).")
        if not applied and old != JobStatus.cancelled:
            raise DetectflowError(
                ErrorCode.job_not_cancellable,
                f"Job {job_id} is {old}: only unfinished jobs can be cancelled.",
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
        if not kind_of(job.task).media & {"image", "images"}:  # a match job's input is embeddings
            raise DetectflowError(ErrorCode.job_not_found, f"Job {job_id} is a {job.task.value} job: it has no image.")
        kept = await self.store.annotated(job_id)
        if kept is not None and (cached := await self.blobs.get(kept)) is not None:
            return cached
        from detectflow.jobs.annotated import render_annotated_png

        data = await self.blobs.get(input_name(job.image_sha256))
        if data is None:
            raise DetectflowError(ErrorCode.job_not_found, f"The image of job {job_id} has expired.")
        data = unpack_images(data)[0]  # a job of several images draws its first
        # decoding and drawing take milliseconds of CPU: not on the event loop
        detections = _drawable(job.result)
        png = await to_thread.run_sync(render_annotated_png, data, detections, self.settings.api_max_image_pixels)
        if len(png) <= self.settings.api_annotated_cache_max_bytes:  # a big one is rendered again, not kept
            name = content_name("annotated", png, ".png")
            await self._keep(job, name, png)
            await self.store.save_annotated(job_id, name)
        return png
