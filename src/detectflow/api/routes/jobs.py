"""/v1/jobs: translate HTTP to and from the JobService."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, File, Form, Header, Query, Request, UploadFile
from fastapi.responses import JSONResponse, Response

from detectflow.api.deps import JobServiceDep, SettingsDep
from detectflow.api.schemas import ErrorResponse, JobPublic
from detectflow.config import Task
from detectflow.jobs.models import DetectflowError, ErrorCode
from detectflow.jobs.public import job_public
from detectflow.logs import request_id_var

router = APIRouter(prefix="/v1/jobs", tags=["jobs"])

_ERRORS = {code: {"model": ErrorResponse} for code in (400, 404, 409, 413, 415, 422, 429)}


def _base_url(request: Request, public_url: str) -> str:
    return public_url or str(request.base_url).rstrip("/")


@router.post(
    "",
    status_code=202,
    response_model=None,
    responses={202: {"model": JobPublic, "description": "Accepted; poll the Location."}, **_ERRORS},
    summary="Submit an image for detection",
)
async def create_job(
    request: Request,
    service: JobServiceDep,
    settings: SettingsDep,
    file: Annotated[UploadFile, File(description="The image (JPEG, PNG, WebP, BMP, TIFF).")],
    task: Annotated[Task, Form(description="What to detect.")],
    webhook_url: Annotated[str | None, Form(description="POSTed the job JSON when it ends.")] = None,
    idempotency_key: Annotated[
        str | None, Header(alias="Idempotency-Key", max_length=255, description="Replays return the same job.")
    ] = None,
) -> JSONResponse:
    data = await file.read(settings.api_max_upload_bytes + 1)
    if len(data) > settings.api_max_upload_bytes:
        raise DetectflowError(
            ErrorCode.payload_too_large,
            f"The file exceeds {settings.api_max_upload_bytes} bytes.",
            {"max_upload_bytes": settings.api_max_upload_bytes},
        )
    job, created = await service.submit(
        data, task, webhook_url=webhook_url, idempotency_key=idempotency_key, request_id=request_id_var.get()
    )
    body = job_public(job, _base_url(request, settings.api_public_url))
    return JSONResponse(
        body,
        status_code=202 if created else 200,
        headers={"Location": body["links"]["self"], "Idempotent-Replayed": str(not created).lower()},
    )


#: Longest a GET may wait for a job to finish (seconds).
MAX_WAIT_SECONDS = 30.0


@router.get("/{job_id}", response_model=JobPublic, responses=_ERRORS, summary="Job status and result")
async def get_job(
    job_id: str,
    request: Request,
    service: JobServiceDep,
    settings: SettingsDep,
    wait: Annotated[
        float, Query(ge=0, le=MAX_WAIT_SECONDS, description="Seconds to wait for the job to finish (long polling).")
    ] = 0,
) -> JSONResponse:
    job = await service.get(job_id)
    if wait > 0 and not job.status.is_final:
        await request.app.state.waiter.wait(job_id, wait)
        job = await service.get(job_id)
    return JSONResponse(job_public(job, _base_url(request, settings.api_public_url)))


@router.delete("/{job_id}", response_model=JobPublic, responses=_ERRORS, summary="Cancel a job that has not started")
async def cancel_job(job_id: str, request: Request, service: JobServiceDep, settings: SettingsDep) -> JSONResponse:
    return JSONResponse(job_public(await service.cancel(job_id), _base_url(request, settings.api_public_url)))


@router.get(
    "/{job_id}/annotated",
    response_class=Response,
    responses={200: {"content": {"image/png": {}}}, **_ERRORS},
    summary="The image with its detections drawn (PNG)",
)
async def get_annotated(job_id: str, service: JobServiceDep) -> Response:
    return Response(await service.annotated_png(job_id), media_type="image/png")
