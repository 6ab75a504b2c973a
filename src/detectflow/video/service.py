"""The API's side of video jobs: their options from the form, their frames by page, their annotated WebM."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from anyio import to_thread
from pydantic import ValidationError

from detectflow.blobs.base import content_name, input_name
from detectflow.jobs.errors import DetectflowError, ErrorCode
from detectflow.jobs.records import JobRecord, JobStatus
from detectflow.video import storage
from detectflow.video.annotate import render_annotated_webm
from detectflow.video.models import FramePage, VideoOptions

if TYPE_CHECKING:
    from detectflow.jobs.service import JobService

__all__ = ["MAX_FRAMES_PAGE", "video_options", "frame_page", "annotated_webm"]

#: Most frames one page of ``GET /v1/jobs/{id}/frames`` returns.
MAX_FRAMES_PAGE = 500


def video_options(**fields: Any) -> VideoOptions | None:
    """The video options of a submission from its form fields; None when it gave none.

    Raises
    ------
    DetectflowError
        ``validation_error`` for inconsistent options (``end_ms`` not after ``start_ms``).
    """
    given = {k: v for k, v in fields.items() if v is not None}
    if not given:
        return None
    try:
        return VideoOptions(**given)
    except ValidationError as exc:
        first = exc.errors()[0]
        raise DetectflowError(
            ErrorCode.validation_error, first["msg"].removeprefix("Value error, "), {"field": "end_ms"}
        ) from None


def _finished_video(job: JobRecord, what: str) -> None:
    if job.media != "video":
        raise DetectflowError(ErrorCode.not_found, f"Job {job.id} is not a video job: it has no {what}.")
    if job.status is not JobStatus.succeeded:
        raise DetectflowError(
            ErrorCode.job_not_finished,
            f"Job {job.id} is {job.status}; its {what} exist once it has succeeded.",
            {"status": job.status.value},
        )


async def frame_page(service: JobService, job_id: str, tenant: str, offset: int, limit: int) -> FramePage:
    """One page of a finished video job's frames, each with its detections.

    Raises
    ------
    DetectflowError
        ``job_not_found`` (unknown, another tenant's, or expired frames), ``not_found`` (not a video
        job), ``job_not_finished``.
    """
    job = await service.get(job_id, tenant)
    _finished_video(job, "frames")
    store = service.store
    items, total = await storage.frame_page(store.client, store.keys, job_id, offset, limit)
    if total == 0:
        raise DetectflowError(ErrorCode.job_not_found, f"The frames of job {job_id} have expired.")
    after = offset + len(items)
    return FramePage(items=items, offset=offset, total=total, next_offset=after if after < total else None)


async def annotated_webm(service: JobService, job: JobRecord) -> bytes:
    """The job's sampled frames with their detections, track ids and identities drawn, as WebM (cached).

    Raises
    ------
    DetectflowError
        ``job_not_finished`` before the job succeeded; ``job_not_found`` once its video expired.
    """
    _finished_video(job, "annotated video")
    store = service.store
    kept = await store.annotated(job.id)
    if kept is not None and (cached := await service.blobs.get(kept)) is not None:
        return cached
    data = await service.blobs.get(input_name(job.image_sha256))
    frames = await storage.frame_rows(store.client, store.keys, job.id)
    if data is None or not frames:
        raise DetectflowError(ErrorCode.job_not_found, f"The video of job {job.id} has expired.")
    fps = (job.video_options or VideoOptions()).sample_fps
    rate = min(fps, job.result.video.fps) if job.result is not None else fps
    names = {
        t.track_id: t.identity.subject_name + ("?" if t.identity.decision == "uncertain" else "")
        for t in (job.result.tracks if job.result is not None else [])
        if t.identity is not None and t.identity.decision != "unknown" and t.identity.subject_name
    }
    webm = await to_thread.run_sync(render_annotated_webm, data, frames, rate, names)  # seconds of CPU: off the loop
    if len(webm) <= service.settings.api_annotated_cache_max_bytes:
        name = content_name("annotated", webm, ".webm")
        await service._keep(job, name, webm)
        await store.save_annotated(job.id, name)
    return webm
