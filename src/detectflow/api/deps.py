"""FastAPI dependencies: the settings, the job service, and who a request acts for (API keys and scopes).

They are ``async def`` so FastAPI resolves them on the event loop, not in its thread pool.
"""

from __future__ import annotations

import math
from collections.abc import Awaitable, Callable
from typing import Annotated

from fastapi import Depends, Request, Response, Security
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from detectflow.auth.records import Principal, Scope
from detectflow.auth.store import KeyStore, Verdict
from detectflow.auth.tokens import parse_bearer
from detectflow.config import Settings
from detectflow.galleries.service import GalleryService
from detectflow.jobs.errors import DetectflowError, ErrorCode
from detectflow.jobs.service import DEFAULT_TENANT, JobService

__all__ = ["SettingsDep", "JobServiceDep", "KeyStoreDep", "GalleryServiceDep", "authorize", "ANONYMOUS", "rate_limit_headers"]

#: Who every request is when authentication is disabled.
ANONYMOUS = Principal("anonymous", DEFAULT_TENANT, frozenset(Scope))

_bearer = HTTPBearer(auto_error=False, description="An API key: `Authorization: Bearer dfk_...`.")
_CHALLENGE = 'Bearer realm="detectflow"'


async def get_app_settings(request: Request) -> Settings:
    return request.app.state.settings


async def get_job_service(request: Request) -> JobService:
    return request.app.state.jobs


async def get_key_store(request: Request) -> KeyStore:
    return request.app.state.keys


async def get_gallery_service(request: Request) -> GalleryService:
    return request.app.state.galleries


SettingsDep = Annotated[Settings, Depends(get_app_settings)]
JobServiceDep = Annotated[JobService, Depends(get_job_service)]
KeyStoreDep = Annotated[KeyStore, Depends(get_key_store)]
GalleryServiceDep = Annotated[GalleryService, Depends(get_gallery_service)]


def rate_limit_headers(verdict: Verdict) -> dict[str, str]:
    """The IETF RateLimit-Policy / RateLimit fields (structured fields) of a rate-limited answer."""
    key = verdict.key
    if key is None or verdict.remaining is None or not key.rate_limit_per_second or not key.burst:
        return {}
    window = max(1, math.ceil(key.burst / key.rate_limit_per_second))
    reset = math.ceil((key.burst - verdict.remaining) / key.rate_limit_per_second)
    return {
        "RateLimit-Policy": f'"submit";q={key.burst};w={window}',
        "RateLimit": f'"submit";r={verdict.remaining};t={reset}',
    }


def authorize(scope: Scope, cost: int = 0) -> Callable[..., Awaitable[Principal]]:
    """A dependency that admits requests whose key has ``scope``, taking ``cost`` tokens of its rate limit.

    No key or an unknown key: 401 ``unauthorized`` with ``WWW-Authenticate: Bearer``; a key
    without the scope: 403 ``forbidden``; an empty bucket: 429 ``rate_limited`` with
    ``Retry-After`` and the RateLimit fields.
    """

    async def dependency(
        request: Request,
        response: Response,
        keys: KeyStoreDep,
        _: Annotated[HTTPAuthorizationCredentials | None, Security(_bearer)],
    ) -> Principal:
        if request.app.state.settings.auth == "disabled":
            return ANONYMOUS
        key = parse_bearer(request.headers.get("authorization"))
        if key is None:
            raise DetectflowError(
                ErrorCode.unauthorized, "An API key is required: send `Authorization: Bearer <key>`.",
                headers={"WWW-Authenticate": _CHALLENGE},
            )  # fmt: skip
        verdict = await keys.authenticate(key, cost)
        if verdict.key is None:
            raise DetectflowError(
                ErrorCode.unauthorized, "The API key is unknown or revoked.",
                headers={"WWW-Authenticate": f'{_CHALLENGE}, error="invalid_token"'},
            )  # fmt: skip
        principal = verdict.key.principal()
        if not principal.may(scope):
            raise DetectflowError(
                ErrorCode.forbidden, f"This API key lacks the {scope.value} scope.", {"required_scope": scope.value}
            )
        limits = rate_limit_headers(verdict)
        if not verdict.allowed:
            wait = max(1, math.ceil(verdict.retry_after_ms / 1000))
            raise DetectflowError(
                ErrorCode.rate_limited,
                f"This API key's rate limit ({verdict.key.rate_limit_per_second:g}/s, burst {verdict.key.burst}) "
                "is used up; retry later.",
                {"retry_after_seconds": wait},
                headers={"Retry-After": str(wait), **limits},
            )
        response.headers.update(limits)
        return principal

    return dependency
