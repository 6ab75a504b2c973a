"""/v1/jobs/{id}/frames: a video job's sampled frames by page (translated to and from the video service)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Query

from detectflow.api.deps import JobServiceDep, authorize
from detectflow.api.openapi import errors
from detectflow.auth.records import Principal, Scope
from detectflow.jobs.errors import ErrorCode
from detectflow.video.models import FramePage
from detectflow.video.service import MAX_FRAMES_PAGE, frame_page

router = APIRouter(prefix="/v1/jobs", tags=["jobs"])

Reader = Annotated[Principal, Depends(authorize(Scope.jobs_read))]

_PAGE = {
    "items": [
        {
            "index": 0,
            "timestamp_ms": 0.0,
            "detections": [
                {"label": "face", "score": 0.998, "box": {"x": 61.2, "y": 18.4, "width": 52.1, "height": 66.0},
                 "track_id": 1}
            ],
        }
    ],
    "offset": 0,
    "total": 20,
    "next_offset": 1,
}  # fmt: skip


@router.get(
    "/{job_id}/frames",
    response_model=FramePage,
    responses={
        200: {"description": "Sampled frames in order, each with its detections and their tracks.",
              "content": {"application/json": {"example": _PAGE}}},
        **errors(ErrorCode.unauthorized, ErrorCode.forbidden, ErrorCode.job_not_found, ErrorCode.not_found,
                 ErrorCode.job_not_finished, ErrorCode.validation_error),
    },  # fmt: skip
    summary="A video job's frames and their detections, by page",
)
async def get_frames(
    job_id: str,
    service: JobServiceDep,
    principal: Reader,
    offset: Annotated[int, Query(ge=0, description="First frame of the page (position among the sampled frames).")] = 0,
    limit: Annotated[int, Query(ge=1, le=MAX_FRAMES_PAGE, description="Frames per page.")] = 100,
) -> FramePage:
    return await frame_page(service, job_id, principal.tenant, offset, limit)
