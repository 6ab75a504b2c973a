"""The API's endpoints as data: one `Call` per request (method, path, body, how to read the answer).

`Client` and `AsyncClient` send the same calls through the same retry and breaker loop, so a new endpoint is one
builder here plus a one-line method on each client.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import IO, Any, Generic, TypeVar, Union

import httpx
from pydantic import BaseModel

from detectflow.api.schemas import Health, Readiness, UploadPublic, UploadReceived
from detectflow.auth.records import ApiKeyCreate, ApiKeyCreated, ApiKeyList, ApiKeyPublic, Scope
from detectflow.client.errors import ApiError
from detectflow.client.retry import parse_retry_after
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
    ThresholdsUpdate,
)
from detectflow.jobs.options import Thresholds
from detectflow.jobs.records import JobPage, JobPublic, JobStatus
from detectflow.video.models import FramePage

__all__ = ["Call", "ImageInput", "image_part", "is_url", "api_error", "new_idempotency_key"]

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
    files: Mapping[str, tuple[str, bytes]] | Sequence[tuple[str, tuple[str, bytes]]] | None = None
    content: bytes | None = None
    headers: Mapping[str, str] = field(default_factory=dict)
    timeout: float | None = None
    idempotent: bool = False
    ok: frozenset[int] = frozenset()
    retry: bool = True
    anonymous: bool = False  # sent without the client's Authorization header (a pre-signed URL)

    def request_kwargs(self) -> dict[str, Any]:
        """Keyword arguments of ``httpx.Client.request`` for this call."""
        kwargs: dict[str, Any] = {"headers": dict(self.headers)}
        for name in ("params", "json", "data", "files", "content"):
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


def is_url(value: object) -> bool:
    """An http(s) URL string (submitted as ``source_url``, not read as a path)."""
    return isinstance(value, str) and value.startswith(("http://", "https://"))


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
        For an http(s) URL: only a job submit takes one (as ``source_url``).
    """
    if isinstance(image, (bytes, bytearray, memoryview)):
        return filename or "image", bytes(image)
    if is_url(image):
        raise ValueError(f"{image}: a URL is not a file; submit it as a job's source_url, or download it first")
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


def _form_value(value: Any) -> str:
    return str(value).lower() if isinstance(value, bool) else str(value)


def submit_job(
    image: ImageInput | None,
    task: str,
    *,
    webhook_url: str | None = None,
    idempotency_key: str | None = None,
    filename: str | None = None,
    video: Mapping[str, Any] | None = None,
    upload_id: str | None = None,
    source_url: str | None = None,
    reference: ImageInput | None = None,
    gallery: str | None = None,
    subject: str | None = None,
    top_k: int | None = None,
    match_threshold: float | None = None,
    uncertain_threshold: float | None = None,
    cache: bool | None = None,
) -> Call[JobPublic]:
    """``POST /v1/jobs``: exactly one of ``image`` (an http(s) URL string is sent as ``source_url``),
    ``upload_id`` and ``source_url``; the recognition options as the API names them."""
    if is_url(image):
        image, source_url = None, str(image)
    given = sum(x is not None for x in (image, upload_id, source_url))
    if given != 1:
        raise ValueError("give exactly one of image, upload_id and source_url")
    if reference is not None and source_url is not None:
        # the API fetches one image by URL and keeps no second one with it
        raise ValueError("verify by source_url takes subject= and gallery=, not a reference image")
    data = {"task": str(task)}
    options = {
        "webhook_url": webhook_url, "upload_id": upload_id, "source_url": source_url, "gallery": gallery,
        "subject": subject, "top_k": top_k, "match_threshold": match_threshold,
        "uncertain_threshold": uncertain_threshold, "cache": cache,
        **(video or {}),  # sample_fps, max_frames, start_ms, end_ms, track, progress_interval_seconds (videos)
    }  # fmt: skip
    for name, value in options.items():
        if value is not None:
            data[name] = _form_value(value)
    files: list[tuple[str, tuple[str, bytes]]] = []
    if image is not None:
        files.append(("file", image_part(image, filename)))
    if reference is not None:
        files.append(("reference", image_part(reference)))
    return Call(
        "POST", "/v1/jobs", _parsed(JobPublic), data=data, files=files or None,
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


# --- uploads --------------------------------------------------------------------------------------------------------


def create_upload() -> Call[UploadPublic]:
    # an unused upload expires: a second one made by a retry costs nothing
    return Call("POST", "/v1/uploads", _parsed(UploadPublic), idempotent=True)


def put_upload(upload: UploadPublic, data: bytes) -> Call[UploadReceived | None]:
    """PUT the bytes to the upload's URL: a pre-signed S3 URL without the API key (S3 answers no JSON), else the
    API's own URL with it."""
    parse = (lambda r: _nothing(_checked(r))) if upload.presigned else _parsed(UploadReceived)
    return Call(upload.method, upload.url, parse, content=bytes(data), idempotent=True,
                anonymous=upload.presigned)  # fmt: skip


def upload_bytes(media: ImageInput) -> bytes:
    """The bytes of an upload: a path, bytes or a binary file object."""
    return image_part(media)[1]


# --- galleries ------------------------------------------------------------------------------------------------------


def _thresholds(match: float | None, uncertain: float | None) -> dict[str, float]:
    return {k: v for k, v in (("match", match), ("uncertain", uncertain)) if v is not None}


def create_gallery(
    name: str,
    *,
    match_threshold: float | None = None,
    uncertain_threshold: float | None = None,
    metadata: Mapping[str, Any] | None = None,
) -> Call[Gallery]:
    body = GalleryCreate(name=name, thresholds=Thresholds(**_thresholds(match_threshold, uncertain_threshold)),
                         metadata=dict(metadata or {}))  # fmt: skip
    # not idempotent: a gallery made twice is two galleries
    return Call("POST", "/v1/galleries", _parsed(Gallery), json=body.model_dump(mode="json"))


def list_galleries() -> Call[list[Gallery]]:
    return Call("GET", "/v1/galleries", lambda r: GalleryList.model_validate_json(_checked(r).content).items,
                idempotent=True)  # fmt: skip


def get_gallery(gallery_id: str) -> Call[Gallery]:
    return Call("GET", f"/v1/galleries/{gallery_id}", _parsed(Gallery), idempotent=True)


def delete_gallery(gallery_id: str) -> Call[None]:
    return Call("DELETE", f"/v1/galleries/{gallery_id}", lambda r: _nothing(_checked(r)), idempotent=True)


def export_gallery(gallery_id: str) -> Call[GalleryExport]:
    return Call("GET", f"/v1/galleries/{gallery_id}/export", _parsed(GalleryExport), idempotent=True)


def import_gallery(export: GalleryExport | Mapping[str, Any]) -> Call[Gallery]:
    body = export if isinstance(export, GalleryExport) else GalleryExport.model_validate(export)
    return Call("POST", "/v1/galleries/import", _parsed(Gallery), json=body.model_dump(mode="json"))


def match(
    gallery_id: str,
    embeddings: Sequence[Sequence[float]],
    *,
    top_k: int = 3,
    match_threshold: float | None = None,
    uncertain_threshold: float | None = None,
) -> Call[MatchResponse | JobPublic]:
    """The answer (200), or the ``match`` job (202) of a batch above the server's synchronous limit."""
    given = _thresholds(match_threshold, uncertain_threshold)
    body = MatchRequest(embeddings=[list(e) for e in embeddings], top_k=top_k,
                        thresholds=Thresholds(**given) if given else None)  # fmt: skip

    def parse(resp: httpx.Response) -> MatchResponse | JobPublic:
        return (JobPublic if _checked(resp).status_code == 202 else MatchResponse).model_validate_json(resp.content)

    # a read: safe to repeat (a repeated large batch is one more job with the same result)
    return Call("POST", f"/v1/galleries/{gallery_id}/match", parse,
                json=body.model_dump(mode="json", exclude_none=True), idempotent=True)  # fmt: skip


def update_gallery(
    gallery_id: str,
    *,
    name: str | None = None,
    match_threshold: float | None = None,
    uncertain_threshold: float | None = None,
    metadata: Mapping[str, Any] | None = None,
) -> Call[Gallery]:
    given = _thresholds(match_threshold, uncertain_threshold)
    body = GalleryUpdate(name=name, thresholds=ThresholdsUpdate(**given) if given else None,
                         metadata=dict(metadata) if metadata is not None else None)  # fmt: skip
    # the same change twice leaves the same gallery (one more version)
    return Call("PATCH", f"/v1/galleries/{gallery_id}", _parsed(Gallery),
                json=body.model_dump(mode="json", exclude_none=True), idempotent=True)  # fmt: skip


def create_subject(gallery_id: str, name: str, *, metadata: Mapping[str, Any] | None = None) -> Call[Subject]:
    body = SubjectCreate(name=name, metadata=dict(metadata or {}))
    return Call("POST", f"/v1/galleries/{gallery_id}/subjects", _parsed(Subject), json=body.model_dump(mode="json"))


def list_subjects(gallery_id: str) -> Call[list[Subject]]:
    return Call("GET", f"/v1/galleries/{gallery_id}/subjects",
                lambda r: SubjectList.model_validate_json(_checked(r).content).items, idempotent=True)  # fmt: skip


def get_subject(gallery_id: str, subject_id: str) -> Call[Subject]:
    return Call("GET", f"/v1/galleries/{gallery_id}/subjects/{subject_id}", _parsed(Subject), idempotent=True)


def delete_subject(gallery_id: str, subject_id: str) -> Call[None]:
    return Call("DELETE", f"/v1/galleries/{gallery_id}/subjects/{subject_id}", lambda r: _nothing(_checked(r)),
                idempotent=True)  # fmt: skip


def enrol_faces(
    gallery_id: str,
    subject_id: str,
    images: ImageInput | Sequence[ImageInput],
    *,
    face_index: int | None = None,
    box: Sequence[float] | str | None = None,
    webhook_url: str | None = None,
    idempotency_key: str | None = None,
) -> Call[JobPublic]:
    """One enrol job for one image or many (the ``file`` part repeated)."""
    many = isinstance(images, (list, tuple))
    parts = [("file", image_part(i)) for i in (images if many else [images])]
    if not parts:
        raise ValueError("give at least one image to enrol")
    data: dict[str, str] = {}
    if face_index is not None:
        data["face_index"] = str(face_index)
    if box is not None:
        data["box"] = box if isinstance(box, str) else ",".join(f"{float(v):g}" for v in box)
    if webhook_url is not None:
        data["webhook_url"] = webhook_url
    return Call(
        "POST", f"/v1/galleries/{gallery_id}/subjects/{subject_id}/faces", _parsed(JobPublic), data=data or None,
        files=parts, headers={"Idempotency-Key": idempotency_key or new_idempotency_key()}, idempotent=True,
    )  # fmt: skip


def list_faces(gallery_id: str, subject_id: str) -> Call[FaceList]:
    return Call("GET", f"/v1/galleries/{gallery_id}/subjects/{subject_id}/faces", _parsed(FaceList),
                idempotent=True)  # fmt: skip


def delete_face(gallery_id: str, subject_id: str, face_id: str) -> Call[None]:
    return Call("DELETE", f"/v1/galleries/{gallery_id}/subjects/{subject_id}/faces/{face_id}",
                lambda r: _nothing(_checked(r)), idempotent=True)  # fmt: skip
