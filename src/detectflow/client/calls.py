"""The API's endpoints as data: one `Call` per request (method, path, body, how to read the answer).

`Client` and `AsyncClient` send the same calls through the same retry and breaker loop, so a new endpoint is one
builder here plus a one-line method on each client.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import IO, Any, Generic, TypeVar, Union

import httpx
from pydantic import BaseModel

from detectflow.api.schemas import Health, Readiness
from detectflow.auth.records import ApiKeyCreate, ApiKeyCreated, ApiKeyList, ApiKeyPublic, Scope
from detectflow.client.errors import ApiError
from detectflow.client.retry import parse_retry_after
from detectflow.jobs.records import JobPage, JobPublic, JobStatus
from detectflow.video.models import FramePage

__all__ = ["Call", "ImageInput", "image_part", "api_error", "new_idempotency_key"]

T = TypeVar("T")
M = TypeVar("M", bound=BaseModel)

#: What a submit accepts: a path, the bytes, or a binary file object (an image or a video).
ImageInput = Union[str, os.PathLike, bytes, bytearray, memoryview, IO[bytes]]

MAX_WAIT_SECONDS = 30.0  # the API's longest long poll (api/routes/jobs.py)
DEFAULT_TIMEOUT = 30.0  # seconds: connect, read and write timeout of one request
WAIT_MARGIN = 10.0  # seconds: a long poll's read timeout is its wait plus this


@dataclass(frozen=True)
class Call(Generic[T]):
    """One API request and how to read its answer.

    Attributes
    ----------
    idempotent
        Sending it twice does no harm, so it is retried after any transport error (not only a refused connection).
    ok
        Statuses whose body ``parse`` reads (besides 2xx); others raise `ApiError`.
    """

    method: str
    path: str
    parse: Callable[[httpx.Response], T]
    params: Mapping[str, Any] | None = None
    json: Any = None
    data: Mapping[str, str] | None = None
    files: Mapping[str, tuple[str, bytes]] | None = None
    headers: Mapping[str, str] = field(default_factory=dict)
    timeout: float | None = None
    idempotent: bool = False
    ok: frozenset[int] = frozenset()
    retry: bool = True

    def request_kwargs(self) -> dict[str, Any]:
        """Keyword arguments of ``httpx.Client.request`` for this call."""
        kwargs: dict[str, Any] = {"headers": dict(self.headers)}
        for name in ("params", "json", "data", "files"):
            value = getattr(self, name)
            if value is not None:
                kwargs[name] = value
        if self.timeout is not None:
            kwargs["timeout"] = self.timeout
        return kwargs


def api_error(resp: httpx.Response) -> ApiError:
    """The `ApiError` of an error answer: the API's ``{"error": {code, message, details}}``, or ``http_<status>``."""
    code, message, details = f"http_{resp.status_code}", resp.reason_phrase or "error", {}
    try:
        body = resp.json()
        err = body["error"]
        code, message, details = str(err["code"]), str(err["message"]), dict(err.get("details") or {})
    except (ValueError, KeyError, TypeError):
        if resp.text:
            message = resp.text[:200]
    return ApiError(
        resp.status_code,
        code,
        message,
        details,
        retry_after=parse_retry_after(resp.headers.get("Retry-After")),
        request_id=resp.headers.get("X-Request-ID"),
    )


def _checked(resp: httpx.Response, ok: frozenset[int] = frozenset()) -> httpx.Response:
    if resp.status_code >= 400 and resp.status_code not in ok:
        raise api_error(resp)
    return resp


def _parsed(model: type[M]) -> Callable[[httpx.Response], M]:
    return lambda resp: model.model_validate_json(_checked(resp).content)


def _nothing(resp: httpx.Response) -> None:
    return None


def _content(resp: httpx.Response) -> bytes:
    return resp.content


def new_idempotency_key() -> str:
    """A fresh idempotency key for one submit (its retries reuse it)."""
    return f"dfc-{uuid.uuid4().hex}"


def image_part(image: ImageInput, filename: str | None = None) -> tuple[str, bytes]:
    """The multipart file part of a submit: ``(filename, bytes)`` from a path, bytes or a binary file object.

    The bytes are read once, so every retry resends the same file.

    Raises
    ------
    TypeError
        When ``image`` is none of those (a text file object, say).
    ValueError
        For an http(s) URL: the API does not fetch images by URL yet.
    """
    if isinstance(image, (bytes, bytearray, memoryview)):
        return filename or "image", bytes(image)
    if isinstance(image, str) and image.startswith(("http://", "https://")):
        # the API takes files only today; a `source_url` form field will be a submit option of its own
        raise ValueError(f"{image}: submitting by URL is not supported by this API version; download it first")
    if isinstance(image, (str, os.PathLike)):
        path = Path(image)
        return filename or path.name, path.read_bytes()
    read = getattr(image, "read", None)
    if callable(read):
        data = read()
        if not isinstance(data, (bytes, bytearray)):
            raise TypeError("open the file in binary mode ('rb')")
        name = getattr(image, "name", None)
        return filename or (Path(name).name if isinstance(name, str) else "image"), bytes(data)
    raise TypeError(f"cannot submit a {type(image).__name__}: give a path, bytes or a binary file object")


# --- health ---------------------------------------------------------------------------------------------------------


def health() -> Call[Health]:
    return Call("GET", "/healthz", _parsed(Health), idempotent=True)


def readiness() -> Call[Readiness]:
    # 503 carries a Readiness body too ("not ready" is an answer, not a failure to retry)
    return Call(
        "GET", "/readyz", lambda r: Readiness.model_validate_json(_checked(r, frozenset({503})).content),
        idempotent=True, ok=frozenset({503}), retry=False,
    )  # fmt: skip


# --- jobs -----------------------------------------------------------------------------------------------------------


def submit_job(
    image: ImageInput,
    task: str,
    *,
    webhook_url: str | None = None,
    idempotency_key: str | None = None,
    filename: str | None = None,
    video: Mapping[str, Any] | None = None,
) -> Call[JobPublic]:
    data = {"task": str(task)}
    if webhook_url is not None:
        data["webhook_url"] = webhook_url
    for name, value in (video or {}).items():  # sample_fps, max_frames, start_ms, end_ms, track (videos only)
        if value is not None:
            data[name] = str(value).lower() if isinstance(value, bool) else str(value)
    return Call(
        "POST", "/v1/jobs", _parsed(JobPublic), data=data, files={"file": image_part(image, filename)},
        headers={"Idempotency-Key": idempotency_key or new_idempotency_key()}, idempotent=True,
    )  # fmt: skip


def get_job(job_id: str, wait: float = 0) -> Call[JobPublic]:
    wait = max(0.0, min(float(wait), MAX_WAIT_SECONDS))
    params = {"wait": f"{wait:g}"} if wait else None
    return Call("GET", f"/v1/jobs/{job_id}", _parsed(JobPublic), params=params, idempotent=True,
                timeout=wait + WAIT_MARGIN if wait else None)  # fmt: skip


def cancel_job(job_id: str) -> Call[JobPublic]:
    return Call("DELETE", f"/v1/jobs/{job_id}", _parsed(JobPublic), idempotent=True)


def list_jobs(
    limit: int = 20,
    cursor: str | None = None,
    status: JobStatus | str | None = None,
    task: str | None = None,
    created_after: datetime | None = None,
) -> Call[JobPage]:
    params: dict[str, Any] = {"limit": limit}
    if cursor:
        params["cursor"] = cursor
    if status:
        params["status"] = str(status)
    if task:
        params["task"] = str(task)
    if created_after:
        params["created_after"] = created_after.isoformat()
    return Call("GET", "/v1/jobs", _parsed(JobPage), params=params,
                idempotent=True)  # fmt: skip


def frames(job_id: str, offset: int = 0, limit: int = 100) -> Call[FramePage]:
    return Call("GET", f"/v1/jobs/{job_id}/frames", _parsed(FramePage), params={"offset": offset, "limit": limit},
                idempotent=True)  # fmt: skip


def annotated(job_id: str) -> Call[bytes]:
    return Call("GET", f"/v1/jobs/{job_id}/annotated", lambda r: _content(_checked(r)), idempotent=True)


# --- keys (admin) ---------------------------------------------------------------------------------------------------


def create_key(
    tenant: str,
    name: str,
    scopes: list[Scope | str] | None = None,
    *,
    rate_limit_per_second: float | None = None,
    burst: int | None = None,
    max_queued_jobs: int | None = None,
) -> Call[ApiKeyCreated]:
    body = ApiKeyCreate(
        tenant=tenant, name=name, scopes=scopes or [Scope.jobs_write, Scope.jobs_read],
        rate_limit_per_second=rate_limit_per_second, burst=burst, max_queued_jobs=max_queued_jobs,
    )  # fmt: skip
    # not idempotent: a key made twice is two keys, so only a refused connection is retried
    return Call("POST", "/v1/keys", _parsed(ApiKeyCreated),
                json=body.model_dump(mode="json"))  # fmt: skip


def list_keys() -> Call[list[ApiKeyPublic]]:
    return Call("GET", "/v1/keys", lambda r: ApiKeyList.model_validate_json(_checked(r).content).items,
                idempotent=True)  # fmt: skip


def revoke_key(key_id: str) -> Call[None]:
    return Call("DELETE", f"/v1/keys/{key_id}", lambda r: _nothing(_checked(r)), idempotent=True)
