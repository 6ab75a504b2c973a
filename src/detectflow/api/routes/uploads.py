"""/v1/uploads: a URL to PUT a large file to (pre-signed S3, or streamed to disk by the API), used as ``upload_id``."""

from __future__ import annotations

import tempfile
from typing import Annotated

from anyio import to_thread
from fastapi import APIRouter, Depends, Request

from detectflow.api.deps import SettingsDep, authorize
from detectflow.api.openapi import errors
from detectflow.api.schemas import UploadPublic, UploadReceived
from detectflow.auth.records import Principal, Scope
from detectflow.jobs.errors import ErrorCode
from detectflow.jobs.uploads import UploadService

router = APIRouter(prefix="/v1/uploads", tags=["uploads"])

Creator = Annotated[Principal, Depends(authorize(Scope.jobs_write, cost=1))]
Writer = Annotated[Principal, Depends(authorize(Scope.jobs_write))]
_AUTH = (ErrorCode.unauthorized, ErrorCode.forbidden)


async def _uploads(request: Request) -> UploadService:
    return request.app.state.uploads


Uploads = Annotated[UploadService, Depends(_uploads)]


@router.post(
    "",
    status_code=201,
    response_model=UploadPublic,
    responses=errors(*_AUTH, ErrorCode.rate_limited),
    summary="Get a URL to upload a large file to",
)
async def create_upload(request: Request, uploads: Uploads, settings: SettingsDep, principal: Creator) -> UploadPublic:
    base = settings.api_public_url or str(request.base_url).rstrip("/")
    up = await uploads.create(principal.tenant, base)
    return UploadPublic(upload_id=up.upload_id, url=up.url, expires_in=up.expires_in, presigned=up.presigned)


@router.put(
    "/{upload_id}",
    response_model=UploadReceived,
    responses=errors(*_AUTH, ErrorCode.upload_not_found, ErrorCode.payload_too_large),
    summary="Upload a file's bytes (stores without an S3 bucket)",
)
async def put_upload(upload_id: str, request: Request, uploads: Uploads, principal: Writer) -> UploadReceived:
    await uploads.owned(upload_id, principal.tenant)
    # streamed to a file on disk chunk by chunk, so the API never holds the whole body
    with tempfile.TemporaryFile() as spool:
        async for chunk in request.stream():
            if chunk:
                await to_thread.run_sync(spool.write, chunk)
        await to_thread.run_sync(spool.seek, 0)
        size = await uploads.receive(upload_id, principal.tenant, spool)
    return UploadReceived(upload_id=upload_id, size=size)
