"""/v1/keys: API keys (admin only)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Response

from detectflow.api.deps import KeyStoreDep, SettingsDep, authorize
from detectflow.api.openapi import errors, headers
from detectflow.auth.records import ApiKeyCreate, ApiKeyCreated, ApiKeyList, Principal, Scope
from detectflow.jobs.errors import DetectflowError, ErrorCode

router = APIRouter(prefix="/v1/keys", tags=["keys"])

Admin = Annotated[Principal, Depends(authorize(Scope.admin))]
_AUTH_ERRORS = (ErrorCode.unauthorized, ErrorCode.forbidden)


@router.post(
    "",
    status_code=201,
    response_model=ApiKeyCreated,
    responses={201: {"description": "The key, shown once.", "headers": headers()},
               **errors(*_AUTH_ERRORS, ErrorCode.validation_error)},  # fmt: skip
    summary="Create an API key",
)
async def create_key(body: ApiKeyCreate, keys: KeyStoreDep, settings: SettingsDep, _: Admin) -> ApiKeyCreated:
    # unset limits take the server's defaults, fixed in the record
    body = body.model_copy(
        update={
            "rate_limit_per_second": body.rate_limit_per_second or settings.key_rate_limit_per_second,
            "burst": body.burst or settings.key_burst,
            "max_queued_jobs": body.max_queued_jobs or settings.key_max_queued_jobs,
        }
    )
    record, key = await keys.create(body)
    return ApiKeyCreated(**record.public().model_dump(), key=key)


@router.get(
    "",
    response_model=ApiKeyList,
    responses={200: {"headers": headers()}, **errors(*_AUTH_ERRORS)},
    summary="List API keys (never the keys themselves)",
)
async def list_keys(keys: KeyStoreDep, _: Admin) -> ApiKeyList:
    return ApiKeyList(items=[r.public() for r in await keys.list()])


@router.delete(
    "/{key_id}",
    status_code=204,
    response_class=Response,
    responses={204: {"description": "Revoked: the key is refused from now on.", "headers": headers()},
               **errors(*_AUTH_ERRORS, ErrorCode.key_not_found)},  # fmt: skip
    summary="Revoke an API key",
)
async def revoke_key(key_id: str, keys: KeyStoreDep, _: Admin) -> Response:
    if not await keys.revoke(key_id):
        raise DetectflowError(ErrorCode.key_not_found, f"No API key {key_id}.")
    return Response(status_code=204)
