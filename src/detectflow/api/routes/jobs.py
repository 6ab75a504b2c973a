"""/v1/jobs: translate HTTP to and from the JobService."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Depends, Form, Header, Query, Request, Response, UploadFile
from pydantic import BaseModel, BeforeValidator, Field

from detectflow.api.deps import GalleryServiceDep, JobServiceDep, SettingsDep, authorize
from detectflow.api.openapi import RATE_LIMIT_HEADERS, errors, headers
from detectflow.auth.records import Principal, Scope
from detectflow.config import Task
from detectflow.jobs.errors import DetectflowError, ErrorCode
from detectflow.jobs.kinds import kind_of
from detectflow.sources import HEAD_BYTES
from detectflow.video.container import sniff_container
from detectflow.jobs.options import MAX_TOP_K, options_for
from detectflow.jobs.records import JobPage, JobPublic, JobStatus
from detectflow.jobs.service import MAX_PAGE_SIZE, MIN_PROGRESS_INTERVAL_SECONDS
from detectflow.jobs.store import JobFilter
from detectflow.logs import request_id_var
from detectflow.video.service import annotated_webm, video_options

router = APIRouter(prefix="/v1/jobs", tags=["jobs"])

#: A submission: the jobs:write scope and one token of the key's rate limit.
Submitter = Annotated[Principal, Depends(authorize(Scope.jobs_write, cost=1))]
Writer = Annotated[Principal, Depends(authorize(Scope.jobs_write))]
Reader = Annotated[Principal, Depends(authorize(Scope.jobs_read))]
_AUTH = (ErrorCode.unauthorized, ErrorCode.forbidden)

#: Longest a GET may wait for a job to finish (seconds).
MAX_WAIT_SECONDS = 30.0

_ID = "3f1c9a0e6b7d4e2f8a5b0c1d2e3f4a5b"
_LINKS = {
    "self": f"http://127.0.0.1:8000/v1/jobs/{_ID}",
    "result": f"http://127.0.0.1:8000/v1/jobs/{_ID}",
    "annotated": f"http://127.0.0.1:8000/v1/jobs/{_ID}/annotated",
}
_QUEUED = {
    "id": _ID, "status": "queued", "task": "face", "created_at": "2026-11-23T18:05:41.944818Z",
    "started_at": None, "finished_at": None, "attempts": 0, "error": None, "result": None, "links": _LINKS,
}  # fmt: skip
_SUCCEEDED = {
    **_QUEUED,
    "status": "succeeded",
    "started_at": "2026-11-23T18:05:41.951002Z",
    "finished_at": "2026-11-23T18:05:41.979411Z",
    "attempts": 1,
    "result": {
        "image": {"width": 512, "height": 512},
        "detections": [
            {
                "label": "face",
                "score": 0.9995,
                "box": {"x": 177.9, "y": 56.8, "width": 95.2, "height": 120.4},
                "landmarks": [
                    {"x": 203.1, "y": 106.2}, {"x": 246.0, "y": 104.9}, {"x": 224.9, "y": 127.3},
                    {"x": 207.6, "y": 149.8}, {"x": 242.3, "y": 148.7},
                ],
            }
        ],
        "model": {"name": "retinaface-mnet025", "version": "0.1.0", "sha256": "b7a7...e4a5", "provider": "CPUExecutionProvider"},
        "timings_ms": {"queued": 6.2, "inference": 21.4, "total": 34.6},
    },
}  # fmt: skip
_JOB_HEADERS = headers(
    RATE_LIMIT_HEADERS,
    {"Location": {"description": "The job's URL, to poll.", "schema": {"type": "string"}}},
    {
        "Idempotent-Replayed": {
            "description": "`true` when an earlier job with the same Idempotency-Key is returned.",
            "schema": {"type": "string", "enum": ["true", "false"]},
        }
    },
)


def _rfc3339_only(value: object) -> object:
    """Refuse a number where an RFC 3339 time is declared (Pydantic would read it as a Unix time)."""
    try:
        float(str(value))
    except ValueError:
        return value
    raise ValueError("an RFC 3339 date-time, not a number")


def _base_url(request: Request, public_url: str) -> str:
    return public_url or str(request.base_url).rstrip("/")


async def _read(file: UploadFile, settings) -> bytes:
    data = await file.read(settings.api_max_upload_bytes + 1)
    if len(data) > settings.api_max_upload_bytes:
        raise DetectflowError(
            ErrorCode.payload_too_large,
            f"The file exceeds {settings.api_max_upload_bytes} bytes.",
            {"max_upload_bytes": settings.api_max_upload_bytes},
        )
    return data


# One model rather than a parameter per field: FastAPI analyses every form parameter's annotation on each
# request; with 18 of them that was about 0.4 ms of API CPU per submission (in-process ASGI, measured).
class JobForm(BaseModel):
    """The form fields of a job submission (multipart/form-data)."""

    task: Task = Field(description="What to do (docs/recognition.md for the recognition tasks).", examples=["face"])
    file: UploadFile | None = Field(
        None, description="The image (JPEG, PNG, WebP, BMP, TIFF) or video (MP4, MOV, MKV, WebM, AVI); or give `upload_id` or `source_url`."
    )
    upload_id: str | None = Field(
        None,
        description="An upload (`POST /v1/uploads`) holding the image or video, instead of `file`; a video "
        "above `api_max_upload_bytes` goes to the worker unread (up to `video_max_bytes`).",
    )
    source_url: str | None = Field(
        None, description="An https URL the worker fetches the image or video from, instead of `file`.",
        examples=["https://example.org/photo.jpg"],
    )  # fmt: skip
    gallery: str | None = Field(None, description="recognize, verify: the gallery's id.")
    subject: str | None = Field(None, description="verify: compare with this subject of `gallery`.")
    reference: UploadFile | None = Field(None, description="verify: the second image (instead of a subject).")
    top_k: int | None = Field(None, ge=1, le=MAX_TOP_K, description="recognize: candidates per face (3).")
    match_threshold: float | None = Field(
        None, gt=0, le=2, description="recognize, verify: overrides the gallery's `match` distance."
    )
    uncertain_threshold: float | None = Field(
        None, gt=0, le=2, description="recognize, verify: overrides the `uncertain` distance."
    )
    webhook_url: str | None = Field(
        None, description="POSTed the job JSON when it ends.", examples=["https://example.org/hooks/df"]
    )
    progress_interval_seconds: float | None = Field(
        None, ge=MIN_PROGRESS_INTERVAL_SECONDS,
        description="Videos, with `webhook_url`: also POST a `job.progress` event at most this often (seconds) "
        "while the job runs.",
    )  # fmt: skip
    cache: bool = Field(
        True, description="`false`: always run the job, never answer it from (nor keep it in) the result cache."
    )
    sample_fps: float | None = Field(
        None, gt=0, description="Videos: frames per second of video to run the model on (default 5)."
    )
    max_frames: int | None = Field(None, ge=1, description="Videos: at most this many sampled frames.")
    start_ms: int | None = Field(None, ge=0, description="Videos: start of the window to sample, ms.")
    end_ms: int | None = Field(None, ge=1, description="Videos: end of the window to sample (exclusive), ms.")
    track: bool | None = Field(None, description="Videos: follow detections as tracks (default true).")


@router.post(
    "",
    status_code=202,
    response_model=JobPublic,
    responses={
        202: {
            "description": "Accepted: the job is queued; poll its Location.",
            "headers": _JOB_HEADERS,
            "content": {"application/json": {"example": _QUEUED}},
        },
        200: {
            "model": JobPublic,
            "description": "An earlier job with the same Idempotency-Key, file and task (`Idempotent-Replayed: true`).",
            "headers": _JOB_HEADERS,
            "content": {"application/json": {"example": _SUCCEEDED}},
        },
        **errors(
            *_AUTH,
            ErrorCode.rate_limited,
            ErrorCode.quota_exceeded,
            ErrorCode.invalid_image,
            ErrorCode.invalid_video,
            ErrorCode.payload_too_large,
            ErrorCode.image_too_large,
            ErrorCode.video_too_large,
            ErrorCode.video_too_long,
            ErrorCode.unsupported_media_type,
            ErrorCode.validation_error,
            ErrorCode.idempotency_key_reused,
            ErrorCode.webhooks_disabled,
            ErrorCode.queue_full,
            ErrorCode.gallery_not_found,
            ErrorCode.subject_not_found,
            ErrorCode.upload_not_found,
        ),
    },
    summary="Submit an image or a video for detection or recognition",
)
async def create_job(
    request: Request,
    response: Response,
    service: JobServiceDep,
    galleries: GalleryServiceDep,
    settings: SettingsDep,
    principal: Submitter,
    form: Annotated[JobForm, Form(media_type="multipart/form-data")],
    idempotency_key: Annotated[
        str | None,
        Header(
            alias="Idempotency-Key", max_length=255, description="Replays return the same job.", examples=["upload-42"]
        ),
    ] = None,
) -> JobPublic:
    task, file, upload_id, source_url = form.task, form.file, form.upload_id, form.source_url
    gallery, subject, reference = form.gallery, form.subject, form.reference
    video = video_options(sample_fps=form.sample_fps, max_frames=form.max_frames, start_ms=form.start_ms,
                          end_ms=form.end_ms, track=form.track)  # fmt: skip
    try:
        options = options_for(
            task, gallery_id=gallery, subject_id=subject, top_k=form.top_k, match=form.match_threshold,
            uncertain=form.uncertain_threshold, has_reference=reference is not None,
        )  # fmt: skip
    except ValueError as exc:
        raise DetectflowError(ErrorCode.validation_error, str(exc)) from None
    if gallery is not None:  # a tenant's gallery exists, and so does the subject: or 404 now, not a failed job
        if subject is not None:
            await galleries.get_subject(principal.tenant, gallery, subject)
        else:
            await galleries.get(principal.tenant, gallery)
    if sum(x is not None for x in (file, upload_id, source_url)) != 1:
        raise DetectflowError(
            ErrorCode.validation_error, "Send exactly one of `file`, `upload_id` and `source_url`.", {"field": "file"}
        )
    data: bytes | list[bytes]
    by_reference = None  # a video upload above api_max_upload_bytes: the worker reads and probes it
    if source_url is not None:
        data = b""
    elif upload_id is not None:
        uploads = request.app.state.uploads
        size = await uploads.size(upload_id, principal.tenant)
        if (
            size > settings.api_max_upload_bytes
            and "video" in kind_of(task).media
            and sniff_container(await uploads.head(upload_id, principal.tenant, HEAD_BYTES)) is not None
        ):
            if size > settings.video_max_bytes:
                raise DetectflowError(
                    ErrorCode.payload_too_large,
                    f"The upload holds {size} bytes; a video takes at most {settings.video_max_bytes}.",
                    {"max_video_bytes": settings.video_max_bytes, "size": size},
                )
            data, by_reference = b"", upload_id
        else:
            data = await uploads.take(upload_id, principal.tenant, settings.api_max_upload_bytes)
    else:
        data = await _read(file, settings)
    if reference is not None:
        data = [data, await _read(reference, settings)]
    job, created = await service.submit(
        data,
        task,
        options=options,
        tenant=principal.tenant,
        max_queued_jobs=principal.max_queued_jobs,
        webhook_url=form.webhook_url,
        idempotency_key=idempotency_key,
        request_id=request_id_var.get(),
        video=video,
        progress_interval_seconds=form.progress_interval_seconds,
        cache=form.cache,
        source_url=source_url,
        upload_id=by_reference,
    )
    if by_reference is not None:  # the worker takes its bytes
        await request.app.state.uploads.hand_over(upload_id)
    elif upload_id is not None:  # its bytes live on as the job's content-addressed input
        await request.app.state.uploads.discard(upload_id)
    public = job.public(_base_url(request, settings.api_public_url))
    response.status_code = 202 if created else 200
    response.headers["Location"] = public.links.self
    response.headers["Idempotent-Replayed"] = str(not created).lower()
    return public


@router.get(
    "",
    response_model=JobPage,
    responses={
        200: {
            "description": "Jobs, newest first; follow `next_cursor` for the next page.",
            "content": {"application/json": {"example": {"items": [_SUCCEEDED], "next_cursor": "MTc2NDAyMzk0MTk0NDoz"}}},
        },
        **errors(*_AUTH, ErrorCode.validation_error),
    },
    summary="List jobs, newest first",
)
async def list_jobs(
    request: Request,
    service: JobServiceDep,
    settings: SettingsDep,
    principal: Reader,
    limit: Annotated[int, Query(ge=1, le=MAX_PAGE_SIZE, description="Jobs per page.")] = 20,
    cursor: Annotated[
        str | None, Query(max_length=200, description="`next_cursor` of the previous page.")
    ] = None,
    status: Annotated[JobStatus | None, Query(description="Only jobs in this status.")] = None,
    task: Annotated[Task | None, Query(description="Only jobs of this task.")] = None,
    created_after: Annotated[
        datetime | None,
        BeforeValidator(_rfc3339_only),
        Query(description="Only jobs created after this time (RFC 3339)."),
    ] = None,
) -> JobPage:
    where = JobFilter(status=status, task=task, created_after=created_after)
    return await service.list(limit, cursor, where, _base_url(request, settings.api_public_url), principal.tenant)


@router.get(
    "/{job_id}",
    response_model=JobPublic,
    responses={
        200: {"description": "The job; with `wait`, once it has ended or the wait is over.",
              "content": {"application/json": {"example": _SUCCEEDED}}},
        **errors(*_AUTH, ErrorCode.job_not_found, ErrorCode.validation_error),
    },  # fmt: skip
    summary="Job status and result",
)
async def get_job(
    job_id: str,
    request: Request,
    service: JobServiceDep,
    settings: SettingsDep,
    principal: Reader,
    wait: Annotated[
        float, Query(ge=0, le=MAX_WAIT_SECONDS, description="Seconds to wait for the job to finish (long polling).")
    ] = 0,
) -> JobPublic:
    job = await service.get_with_capacity(job_id, principal.tenant)
    if wait > 0 and not job.status.is_final:
        await request.app.state.waiter.wait(job_id, wait)
        job = await service.get_with_capacity(job_id, principal.tenant)
    return job.public(_base_url(request, settings.api_public_url))


@router.delete(
    "/{job_id}",
    response_model=JobPublic,
    responses={
        200: {"description": "The job, now cancelled (or cancelled already).",
              "content": {"application/json": {"example": {**_QUEUED, "status": "cancelled"}}}},
        **errors(*_AUTH, ErrorCode.job_not_found, ErrorCode.job_not_cancellable),
    },  # fmt: skip
    summary="Cancel a job that has not started",
)
async def cancel_job(
    job_id: str, request: Request, service: JobServiceDep, settings: SettingsDep, principal: Writer
) -> JobPublic:
    return (await service.cancel(job_id, principal.tenant)).public(_base_url(request, settings.api_public_url))


@router.get(
    "/{job_id}/annotated",
    response_class=Response,
    responses={
        200: {"content": {"image/png": {"schema": {"type": "string", "format": "binary"}},
                          "video/webm": {"schema": {"type": "string", "format": "binary"}}},
              "description": "The image (PNG) or the video's sampled frames (VP9 WebM) with the detections drawn."},
        **errors(*_AUTH, ErrorCode.job_not_found, ErrorCode.job_not_finished),
    },  # fmt: skip
    summary="The image or video with its detections drawn (PNG or WebM)",
)
async def get_annotated(job_id: str, service: JobServiceDep, principal: Reader) -> Response:
    job = await service.get(job_id, principal.tenant)
    if job.media == "video":
        return Response(await annotated_webm(service, job), media_type="video/webm")
    return Response(await service.annotated_png(job_id, principal.tenant), media_type="image/png")
