"""/v1/galleries: face galleries, their subjects and faces, export/import and batch match (a tenant's own)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, File, Form, Header, Request, Response, UploadFile

from detectflow.api.deps import GalleryServiceDep, JobServiceDep, SettingsDep, authorize
from detectflow.api.openapi import RATE_LIMIT_HEADERS, errors, headers
from detectflow.auth.records import Principal, Scope
from detectflow.config import Settings, Task
from detectflow.galleries.records import (
    FaceList,
    Gallery,
    GalleryCreate,
    GalleryExport,
    GalleryList,
    GalleryUpdate,
    MatchRequest,
    MatchResponse,
    Subject,
    SubjectCreate,
    SubjectList,
)
from detectflow.jobs.errors import DetectflowError, ErrorCode
from detectflow.jobs.options import EnrolOptions
from detectflow.jobs.records import JobPublic
from detectflow.jobs.results import Box
from detectflow.logs import request_id_var

router = APIRouter(prefix="/v1/galleries", tags=["galleries"])

Reader = Annotated[Principal, Depends(authorize(Scope.galleries_read))]
Writer = Annotated[Principal, Depends(authorize(Scope.galleries_write))]
#: Enrolment and batch match spend a token of the key's rate limit, as submissions do.
Enroller = Annotated[Principal, Depends(authorize(Scope.galleries_write, cost=1))]
Matcher = Annotated[Principal, Depends(authorize(Scope.galleries_read, cost=1))]
_AUTH = (ErrorCode.unauthorized, ErrorCode.forbidden)
_G = ErrorCode.gallery_not_found
_S = ErrorCode.subject_not_found


def _base_url(request: Request, public_url: str) -> str:
    return public_url or str(request.base_url).rstrip("/")


async def read_uploads(files: list[UploadFile], settings: Settings, most: int) -> list[bytes]:
    """The bytes of each uploaded file, each at most ``api_max_upload_bytes``, at most ``most`` files.

    Raises
    ------
    DetectflowError
        ``payload_too_large`` for a file over the limit, ``validation_error`` for too many files.
    """
    if len(files) > most:
        raise DetectflowError(
            ErrorCode.validation_error, f"{len(files)} files: at most {most} per request.",
            {"field": "file", "max_files": most},
        )  # fmt: skip
    out = []
    for f in files:
        data = await f.read(settings.api_max_upload_bytes + 1)
        if len(data) > settings.api_max_upload_bytes:
            raise DetectflowError(
                ErrorCode.payload_too_large,
                f"The file exceeds {settings.api_max_upload_bytes} bytes.",
                {"max_upload_bytes": settings.api_max_upload_bytes},
            )
        out.append(data)
    return out


def parse_box(text: str | None) -> Box | None:
    """``x,y,width,height`` in pixels, as a Box (None for None)."""
    if text is None or not text.strip():
        return None
    try:
        x, y, w, h = (float(v) for v in text.split(","))
        return Box(x=x, y=y, width=w, height=h)
    except ValueError:
        raise DetectflowError(
            ErrorCode.validation_error, "box must be four numbers: x,y,width,height.", {"field": "box"}
        ) from None


# --- galleries ------------------------------------------------------------------------------
@router.post(
    "",
    status_code=201,
    response_model=Gallery,
    responses={201: {"description": "The gallery.", "headers": headers()},
               **errors(*_AUTH, ErrorCode.validation_error)},  # fmt: skip
    summary="Create a gallery",
)
async def create_gallery(body: GalleryCreate, galleries: GalleryServiceDep, principal: Writer) -> Gallery:
    return await galleries.create(principal.tenant, body)


@router.get(
    "",
    response_model=GalleryList,
    responses={200: {"description": "The tenant's galleries, oldest first."}, **errors(*_AUTH)},
    summary="List galleries",
)
async def list_galleries(galleries: GalleryServiceDep, principal: Reader) -> GalleryList:
    return GalleryList(items=await galleries.list(principal.tenant))


@router.post(
    "/import",
    status_code=201,
    response_model=Gallery,
    responses={
        201: {"description": "A new gallery holding the export's subjects and faces.", "headers": headers()},
        **errors(*_AUTH, ErrorCode.validation_error, ErrorCode.embedding_dimension_mismatch),
    },
    summary="Import a gallery (its export JSON)",
)
async def import_gallery(body: GalleryExport, galleries: GalleryServiceDep, principal: Writer) -> Gallery:
    return await galleries.import_(principal.tenant, body)


@router.get(
    "/{gallery_id}",
    response_model=Gallery,
    responses={200: {"description": "The gallery, with its counts and version."}, **errors(*_AUTH, _G)},
    summary="A gallery",
)
async def get_gallery(gallery_id: str, galleries: GalleryServiceDep, principal: Reader) -> Gallery:
    return await galleries.get(principal.tenant, gallery_id)


@router.patch(
    "/{gallery_id}",
    response_model=Gallery,
    responses={200: {"description": "The changed gallery; its version is bumped, so workers reload it."},
               **errors(*_AUTH, _G, ErrorCode.validation_error)},  # fmt: skip
    summary="Change a gallery's name, thresholds or metadata",
)
async def update_gallery(
    gallery_id: str, body: GalleryUpdate, galleries: GalleryServiceDep, principal: Writer
) -> Gallery:
    return await galleries.update(principal.tenant, gallery_id, body)


@router.delete(
    "/{gallery_id}",
    status_code=204,
    response_class=Response,
    responses={204: {"description": "Deleted, with its subjects and faces."}, **errors(*_AUTH, _G)},
    summary="Delete a gallery",
)
async def delete_gallery(gallery_id: str, galleries: GalleryServiceDep, principal: Writer) -> Response:
    await galleries.delete(principal.tenant, gallery_id)
    return Response(status_code=204)


@router.get(
    "/{gallery_id}/export",
    response_model=GalleryExport,
    responses={200: {"description": "Subjects and embeddings, for backup or migration."}, **errors(*_AUTH, _G)},
    summary="Export a gallery (JSON)",
)
async def export_gallery(gallery_id: str, galleries: GalleryServiceDep, principal: Reader) -> GalleryExport:
    return await galleries.export(principal.tenant, gallery_id)


@router.post(
    "/{gallery_id}/match",
    response_model=MatchResponse | JobPublic,
    responses={
        200: {"description": "Up to `recognition_max_match_batch` (1,000) embeddings: one decision and its "
                             "candidates per embedding, in order.",
              "headers": headers(RATE_LIMIT_HEADERS), "model": MatchResponse},
        202: {"description": "More: a `match` job; poll it, its result holds the same `results`, in order.",
              "model": JobPublic,
              "headers": headers(
                  RATE_LIMIT_HEADERS, {"Location": {"description": "The job's URL.", "schema": {"type": "string"}}}
              )},
        **errors(*_AUTH, _G, ErrorCode.validation_error, ErrorCode.match_batch_too_large,
                 ErrorCode.embedding_dimension_mismatch, ErrorCode.rate_limited, ErrorCode.queue_full,
                 ErrorCode.quota_exceeded),
    },  # fmt: skip
    summary="Match embeddings 1:N (a batch: synchronous up to 1,000, a job above)",
)
async def match_embeddings(
    gallery_id: str,
    body: MatchRequest,
    request: Request,
    response: Response,
    galleries: GalleryServiceDep,
    jobs: JobServiceDep,
    settings: SettingsDep,
    principal: Matcher,
) -> MatchResponse | JobPublic:
    if galleries.synchronous(body):
        return await galleries.match(principal.tenant, gallery_id, body)
    if not principal.may(Scope.jobs_read):  # refused before a job its key could not read is made
        raise DetectflowError(
            ErrorCode.forbidden,
            f"More than {settings.recognition_max_match_batch} embeddings are a match job: reading it needs the "
            f"{Scope.jobs_read.value} scope.",
            {"required_scope": Scope.jobs_read.value},
        )
    data, options = await galleries.match_job_input(principal.tenant, gallery_id, body)
    job, _ = await jobs.submit_data(
        data, Task.match, options=options, tenant=principal.tenant, max_queued_jobs=principal.max_queued_jobs,
        request_id=request_id_var.get(),
    )  # fmt: skip
    public = job.public(_base_url(request, settings.api_public_url))
    response.status_code = 202
    response.headers["Location"] = public.links.self
    return public


# --- subjects -------------------------------------------------------------------------------
@router.post(
    "/{gallery_id}/subjects",
    status_code=201,
    response_model=Subject,
    responses={201: {"description": "The subject.", "headers": headers()},
               **errors(*_AUTH, _G, ErrorCode.validation_error)},  # fmt: skip
    summary="Add a subject (a person) to a gallery",
)
async def create_subject(
    gallery_id: str, body: SubjectCreate, galleries: GalleryServiceDep, principal: Writer
) -> Subject:
    return await galleries.create_subject(principal.tenant, gallery_id, body)


@router.get(
    "/{gallery_id}/subjects",
    response_model=SubjectList,
    responses={200: {"description": "The gallery's subjects, oldest first."}, **errors(*_AUTH, _G)},
    summary="List a gallery's subjects",
)
async def list_subjects(gallery_id: str, galleries: GalleryServiceDep, principal: Reader) -> SubjectList:
    return SubjectList(items=await galleries.list_subjects(principal.tenant, gallery_id))


@router.get(
    "/{gallery_id}/subjects/{subject_id}",
    response_model=Subject,
    responses={200: {"description": "The subject, with its face count."}, **errors(*_AUTH, _G, _S)},
    summary="A subject",
)
async def get_subject(gallery_id: str, subject_id: str, galleries: GalleryServiceDep, principal: Reader) -> Subject:
    return await galleries.get_subject(principal.tenant, gallery_id, subject_id)


@router.delete(
    "/{gallery_id}/subjects/{subject_id}",
    status_code=204,
    response_class=Response,
    responses={204: {"description": "Deleted, with its faces."}, **errors(*_AUTH, _G, _S)},
    summary="Delete a subject",
)
async def delete_subject(
    gallery_id: str, subject_id: str, galleries: GalleryServiceDep, principal: Writer
) -> Response:
    await galleries.delete_subject(principal.tenant, gallery_id, subject_id)
    return Response(status_code=204)


# --- faces ----------------------------------------------------------------------------------
@router.post(
    "/{gallery_id}/subjects/{subject_id}/faces",
    status_code=202,
    response_model=JobPublic,
    responses={
        202: {
            "description": "An `enrol` job: poll it; its result reports each image (enrolled, no_face, ...).",
            "headers": headers(
                RATE_LIMIT_HEADERS, {"Location": {"description": "The job's URL.", "schema": {"type": "string"}}}
            ),
        },
        **errors(
            *_AUTH, _G, _S, ErrorCode.rate_limited, ErrorCode.quota_exceeded, ErrorCode.queue_full,
            ErrorCode.invalid_image, ErrorCode.unsupported_media_type, ErrorCode.payload_too_large,
            ErrorCode.image_too_large, ErrorCode.validation_error,
        ),
    },  # fmt: skip
    summary="Enrol faces: one or many images (repeat `file`)",
)
async def enrol_faces(
    gallery_id: str,
    subject_id: str,
    request: Request,
    response: Response,
    galleries: GalleryServiceDep,
    jobs: JobServiceDep,
    settings: SettingsDep,
    principal: Enroller,
    file: Annotated[list[UploadFile], File(description="Images, one face each (repeat the field).")],
    face_index: Annotated[
        int | None, Form(ge=0, description="In an image with several faces, enrol this one (0: the best scored).")
    ] = None,
    box: Annotated[
        str | None, Form(description="Enrol the face overlapping this box most: `x,y,width,height` in pixels.")
    ] = None,
    webhook_url: Annotated[str | None, Form(description="POSTed the job JSON when it ends.")] = None,
    idempotency_key: Annotated[str | None, Header(alias="Idempotency-Key", max_length=255)] = None,
) -> JobPublic:
    await galleries.get_subject(principal.tenant, gallery_id, subject_id)
    images = await read_uploads(file, settings, settings.recognition_max_enrol_images)
    options = EnrolOptions(gallery_id=gallery_id, subject_id=subject_id, face_index=face_index, box=parse_box(box))
    job, _ = await jobs.submit(
        images,
        Task.enrol,
        options=options,
        tenant=principal.tenant,
        max_queued_jobs=principal.max_queued_jobs,
        webhook_url=webhook_url,
        idempotency_key=idempotency_key,
        request_id=request_id_var.get(),
    )
    public = job.public(_base_url(request, settings.api_public_url))
    response.headers["Location"] = public.links.self
    return public


@router.get(
    "/{gallery_id}/subjects/{subject_id}/faces",
    response_model=FaceList,
    responses={200: {"description": "The subject's enrolled faces (no embeddings: see export)."},
               **errors(*_AUTH, _G, _S)},  # fmt: skip
    summary="List a subject's faces",
)
async def list_faces(gallery_id: str, subject_id: str, galleries: GalleryServiceDep, principal: Reader) -> FaceList:
    return FaceList(items=await galleries.list_faces(principal.tenant, gallery_id, subject_id))


@router.delete(
    "/{gallery_id}/subjects/{subject_id}/faces/{face_id}",
    status_code=204,
    response_class=Response,
    responses={204: {"description": "Deleted."}, **errors(*_AUTH, _G, _S, ErrorCode.face_not_found)},
    summary="Delete an enrolled face",
)
async def delete_face(
    gallery_id: str, subject_id: str, face_id: str, galleries: GalleryServiceDep, principal: Writer
) -> Response:
    await galleries.delete_face(principal.tenant, gallery_id, subject_id, face_id)
    return Response(status_code=204)
