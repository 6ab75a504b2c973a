"""`AsyncClient`: the asyncio detectflow client (httpx), call for call the same as `Client`."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from datetime import datetime
from typing import Any, TypeVar

import httpx

from detectflow.api.schemas import Health, Readiness
from detectflow.auth.records import ApiKeyCreated, ApiKeyPublic, Scope
from detectflow.client import calls
from detectflow.client.breaker import CircuitBreaker
from detectflow.client.calls import DEFAULT_TIMEOUT, MAX_WAIT_SECONDS, Call, ImageInput
from detectflow.client.errors import JobWaitTimeout
from detectflow.client.retry import RetryPolicy
from detectflow.client.sync import DEFAULT_WAIT_TIMEOUT
from detectflow.client.transport import Engine, client_headers
from detectflow.galleries.records import Face, Gallery, GalleryExport, MatchResponse, Subject
from detectflow.jobs.records import JobPage, JobPublic, JobStatus
from detectflow.video.models import FramePage

__all__ = ["AsyncClient"]

T = TypeVar("T")

class AsyncClient:
    """An asyncio client of the detectflow API: jobs, keys and health, typed with the API's own models.

    Every call is retried with exponential backoff and jitter on connection errors, 429 and 503 (honouring
    ``Retry-After``) and goes through a circuit breaker; each submit carries an idempotency key, so its retries
    never make a second job.

    Parameters
    ----------
    base_url
        The API (default: DETECTFLOW_API_URL, else http://127.0.0.1:8000).
    api_key
        The key to send (default: DETECTFLOW_API_KEY, else the admin key `detectflow up` wrote, else none).
    timeout
        Seconds: connect, read and write timeout of one request (a long poll adds its wait).
    retry
        The retry policy (default: `RetryPolicy()`: 5 tries, 0.5 s doubling to 10 s).
    breaker
        The circuit breaker (default: open after 5 consecutive failures, half-open after 30 s).
    headers
        Extra headers for every request.
    transport
        An httpx async transport (e.g. ``httpx.ASGITransport(app)``).
    sleep
        How to wait between tries (``asyncio.sleep``).
    """

    def __init__(
        self,
        base_url: str | None = None,
        api_key: str | None = None,
        *,
        timeout: float = DEFAULT_TIMEOUT,
        retry: RetryPolicy | None = None,
        breaker: CircuitBreaker | None = None,
        headers: Mapping[str, str] | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        self._engine = Engine(base_url, api_key, retry, breaker)
        self._sleep = sleep
        self._http = httpx.AsyncClient(
            base_url=self._engine.base_url, timeout=timeout, transport=transport,
            headers=client_headers(self._engine.api_key, headers),
        )  # fmt: skip

    @property
    def base_url(self) -> str:
        return self._engine.base_url

    @property
    def breaker(self) -> CircuitBreaker:
        return self._engine.breaker

    async def __aenter__(self) -> AsyncClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def close(self) -> None:
        """Close the connection pool."""
        await self._http.aclose()

    def _request(self, call: Call) -> httpx.Request:
        request = self._http.build_request(call.method, call.path, **call.request_kwargs())
        if call.anonymous:  # a pre-signed URL: the API key must not leave for another host
            request.headers.pop("Authorization", None)
        return request

    async def send(self, call: Call[T]) -> T:
        """Send one `Call` with retries and the breaker; return what its parser reads from the answer.

        Raises
        ------
        ApiError
            The API answered with an error (after the retries, for 429 and 503).
        TransportFailed
            No answer after the retries.
        CircuitOpenError
            The breaker is open: nothing was sent.
        """
        attempt = 0
        while True:
            self._engine.admit()
            attempt += 1
            try:
                resp = await self._http.send(self._request(call))
            except httpx.TransportError as exc:
                await self._sleep(self._engine.after_error(call, attempt, exc))
                continue
            delay = self._engine.after_response(call, attempt, resp)
            if delay is None:
                return call.parse(resp)
            await self._sleep(delay)

    # --- health ---

    async def health(self) -> Health:
        """``GET /healthz``: the API process is up."""
        return await self.send(calls.health())

    async def readiness(self) -> Readiness:
        """``GET /readyz``: Redis reachable and workers seen (details with an admin key); 503 is returned, not raised."""
        return await self.send(calls.readiness())

    # --- jobs ---

    async def submit(
        self,
        image: ImageInput | None = None,
        task: str = "face",
        *,
        webhook_url: str | None = None,
        idempotency_key: str | None = None,
        filename: str | None = None,
        sample_fps: float | None = None,
        max_frames: int | None = None,
        start_ms: int | None = None,
        end_ms: int | None = None,
        track: bool | None = None,
        progress_interval_seconds: float | None = None,
        upload_id: str | None = None,
        source_url: str | None = None,
        reference: ImageInput | None = None,
        gallery: str | None = None,
        subject: str | None = None,
        top_k: int | None = None,
        match_threshold: float | None = None,
        uncertain_threshold: float | None = None,
        cache: bool | None = None,
    ) -> JobPublic:
        """Submit an image or a video for ``task``; returns the queued job.

        Parameters
        ----------
        image
            The image: a path, its bytes, or a file object opened ``"rb"`` (read once); an ``http(s)://`` string
            is sent as ``source_url`` (the worker fetches it). Leave it out with ``upload_id`` or ``source_url``.
        task
            ``face``, ``object``, ``embed``, ``recognize`` or ``verify``.
        webhook_url
            POSTed the job when it ends.
        idempotency_key
            The submit's key (default: a fresh one); a retry, or a repeat with the same key and file, returns
            the first job instead of making another.
        filename
            The file name sent (default: the path's or file object's name).
        sample_fps, max_frames, start_ms, end_ms, track
            Videos only: frames per second to run the model on (the server's default: 5), at most this many
            sampled frames, the window to sample (ms), and whether to follow detections as tracks (default true).
        progress_interval_seconds
            Videos, with ``webhook_url``: also POST a signed ``job.progress`` event at most this often (seconds)
            while the job runs.
        upload_id
            An upload (`upload`) holding the image, instead of ``image``.
        source_url
            An http(s) URL the worker fetches the image from, instead of ``image``.
        reference, gallery, subject, top_k, match_threshold, uncertain_threshold
            Recognition: ``verify``'s second image (or ``gallery`` + ``subject``), ``recognize``'s gallery,
            candidates per face, and distances overriding the gallery's thresholds.
        cache
            ``False``: always run the job (never answered from, nor kept in, the result cache).

        Raises
        ------
        ValueError
            Not exactly one of ``image``, ``upload_id`` and ``source_url``.
        """
        return await self.send(calls.submit_job(
            image, task, webhook_url=webhook_url, idempotency_key=idempotency_key, filename=filename,
            video={"sample_fps": sample_fps, "max_frames": max_frames, "start_ms": start_ms, "end_ms": end_ms,
                   "track": track, "progress_interval_seconds": progress_interval_seconds},
            upload_id=upload_id, source_url=source_url, reference=reference, gallery=gallery, subject=subject,
            top_k=top_k, match_threshold=match_threshold, uncertain_threshold=uncertain_threshold, cache=cache,
        ))  # fmt: skip

    async def get_job(self, job_id: str, wait: float = 0) -> JobPublic:
        """The job; with ``wait`` (seconds, at most 30), once it has ended or the wait is over (long poll)."""
        return await self.send(calls.get_job(job_id, wait))

    async def wait_job(self, job_id: str, timeout: float = DEFAULT_WAIT_TIMEOUT) -> JobPublic:
        """Long-poll the job until it ends (succeeded, failed or cancelled).

        Raises
        ------
        JobWaitTimeout
            The job had not ended after ``timeout`` seconds (its last state is ``.job``).
        """
        deadline = time.monotonic() + timeout
        while True:
            remaining = deadline - time.monotonic()
            job = await self.get_job(job_id, wait=max(0.0, min(remaining, MAX_WAIT_SECONDS)))
            if job.status.is_final:
                return job
            if remaining <= 0:
                raise JobWaitTimeout(job, timeout)

    async def detect(self, image: ImageInput, task: str = "face", *, timeout: float = DEFAULT_WAIT_TIMEOUT) -> JobPublic:
        """Submit an image and wait for its job to end."""
        return await self.wait_job((await self.submit(image, task)).id, timeout)

    async def recognize(
        self,
        image: ImageInput,
        gallery: str,
        *,
        top_k: int | None = None,
        match_threshold: float | None = None,
        uncertain_threshold: float | None = None,
        cache: bool | None = None,
        wait: bool = True,
        timeout: float = DEFAULT_WAIT_TIMEOUT,
    ) -> JobPublic:
        """Who is in the image: a ``recognize`` job against ``gallery``, waited for unless ``wait=False``."""
        job = await self.submit(image, "recognize", gallery=gallery, top_k=top_k, match_threshold=match_threshold,
                          uncertain_threshold=uncertain_threshold, cache=cache)  # fmt: skip
        return await self.wait_job(job.id, timeout) if wait else job

    async def verify(
        self,
        image: ImageInput,
        reference: ImageInput | None = None,
        *,
        subject: str | None = None,
        gallery: str | None = None,
        match_threshold: float | None = None,
        uncertain_threshold: float | None = None,
        cache: bool | None = None,
        wait: bool = True,
        timeout: float = DEFAULT_WAIT_TIMEOUT,
    ) -> JobPublic:
        """Is it the same person: ``image`` against ``reference`` (a second image) or ``subject`` of ``gallery``.

        Raises
        ------
        ValueError
            Neither or both of ``reference`` and ``subject``, or ``subject`` without ``gallery``.
        """
        if (reference is None) == (subject is None) or (subject is not None and gallery is None):
            raise ValueError("verify needs reference=<image>, or subject=<id> with gallery=<id>")
        job = await self.submit(image, "verify", reference=reference, subject=subject, gallery=gallery,
                          match_threshold=match_threshold, uncertain_threshold=uncertain_threshold,
                          cache=cache)  # fmt: skip
        return await self.wait_job(job.id, timeout) if wait else job

    async def cancel_job(self, job_id: str) -> JobPublic:
        """Cancel a job that has not started (cancelling a cancelled job is a no-op)."""
        return await self.send(calls.cancel_job(job_id))

    async def list_jobs(
        self,
        limit: int = 20,
        cursor: str | None = None,
        *,
        status: JobStatus | str | None = None,
        task: str | None = None,
        created_after: datetime | None = None,
    ) -> JobPage:
        """One page of the tenant's jobs, newest first; pass ``next_cursor`` as ``cursor`` for the next."""
        return await self.send(calls.list_jobs(limit, cursor, status, task, created_after))

    async def iter_jobs(
        self,
        *,
        status: JobStatus | str | None = None,
        task: str | None = None,
        created_after: datetime | None = None,
        page_size: int = 100,
    ) -> AsyncIterator[JobPublic]:
        """Every job matching the filters, newest first, page after page."""
        cursor = None
        while True:
            page = await self.list_jobs(page_size, cursor, status=status, task=task, created_after=created_after)
            for job in page.items:
                yield job
            if not page.next_cursor:
                return
            cursor = page.next_cursor

    async def annotated(self, job_id: str) -> bytes:
        """A finished job's media with its detections drawn: PNG bytes for an image, VP9 WebM for a video."""
        return await self.send(calls.annotated(job_id))

    async def annotated_png(self, job_id: str) -> bytes:
        """The image of a finished image job with its detections drawn (PNG bytes); `annotated` for any job."""
        return await self.send(calls.annotated(job_id))

    async def frames(self, job_id: str, offset: int = 0, limit: int = 100) -> FramePage:
        """One page of a finished video job's sampled frames, each with its detections and track ids."""
        return await self.send(calls.frames(job_id, offset, limit))

    # --- keys (an admin key is needed) ---

    async def create_key(
        self,
        tenant: str,
        name: str,
        scopes: list[Scope | str] | None = None,
        *,
        rate_limit_per_second: float | None = None,
        burst: int | None = None,
        max_queued_jobs: int | None = None,
    ) -> ApiKeyCreated:
        """Create an API key (its ``key`` is shown this once); unset limits take the server's defaults."""
        return await self.send(calls.create_key(tenant, name, scopes, rate_limit_per_second=rate_limit_per_second,
                                          burst=burst, max_queued_jobs=max_queued_jobs))  # fmt: skip

    async def list_keys(self) -> list[ApiKeyPublic]:
        """Every API key (never the keys themselves)."""
        return await self.send(calls.list_keys())

    async def revoke_key(self, key_id: str) -> None:
        """Revoke a key: it is refused from the next request on."""
        await self.send(calls.revoke_key(key_id))

    # --- uploads ---

    async def upload(self, media: ImageInput) -> str:
        """Upload a (large) file: ``POST /v1/uploads``, then PUT its bytes to the URL answered (a pre-signed S3
        URL without the API key, or the API's own with it); returns the ``upload_id`` to `submit`."""
        data = calls.upload_bytes(media)
        up = await self.send(calls.create_upload())
        await self.send(calls.put_upload(up, data))
        return up.upload_id

    # --- galleries ---

    async def create_gallery(
        self,
        name: str,
        *,
        match_threshold: float | None = None,
        uncertain_threshold: float | None = None,
        metadata: Mapping[str, Any] | None = None,
    ) -> Gallery:
        """Create a gallery (unset thresholds take the defaults, 0.5 and 0.6)."""
        return await self.send(calls.create_gallery(name, match_threshold=match_threshold,
                                              uncertain_threshold=uncertain_threshold, metadata=metadata))  # fmt: skip

    async def list_galleries(self) -> list[Gallery]:
        """The tenant's galleries, oldest first."""
        return await self.send(calls.list_galleries())

    async def get_gallery(self, gallery_id: str) -> Gallery:
        """A gallery with its counts and version."""
        return await self.send(calls.get_gallery(gallery_id))

    async def delete_gallery(self, gallery_id: str) -> None:
        """Delete a gallery with its subjects and faces."""
        await self.send(calls.delete_gallery(gallery_id))

    async def export_gallery(self, gallery_id: str) -> GalleryExport:
        """A gallery's subjects and embeddings (to back up, or `import_gallery` elsewhere)."""
        return await self.send(calls.export_gallery(gallery_id))

    async def import_gallery(self, export: GalleryExport | Mapping[str, Any]) -> Gallery:
        """A new gallery holding an export's subjects and faces."""
        return await self.send(calls.import_gallery(export))

    async def match(
        self,
        gallery_id: str,
        embeddings: Sequence[Sequence[float]],
        *,
        top_k: int = 3,
        match_threshold: float | None = None,
        uncertain_threshold: float | None = None,
    ) -> MatchResponse | JobPublic:
        """Match embeddings (e.g. from ``embed`` jobs) 1:N against a gallery, in order.

        Up to the server's synchronous limit (1,000 by default) the answer; above it the ``match`` job:
        ``wait_job(job.id)``, whose result holds the same ``results``.
        """
        return await self.send(calls.match(gallery_id, embeddings, top_k=top_k, match_threshold=match_threshold,
                                     uncertain_threshold=uncertain_threshold))  # fmt: skip

    async def update_gallery(
        self,
        gallery_id: str,
        *,
        name: str | None = None,
        match_threshold: float | None = None,
        uncertain_threshold: float | None = None,
        metadata: Mapping[str, Any] | None = None,
    ) -> Gallery:
        """Change a gallery's name, thresholds (merged with the current ones) or metadata; bumps its version."""
        return await self.send(calls.update_gallery(gallery_id, name=name, match_threshold=match_threshold,
                                              uncertain_threshold=uncertain_threshold, metadata=metadata))  # fmt: skip

    async def create_subject(self, gallery_id: str, name: str, *, metadata: Mapping[str, Any] | None = None) -> Subject:
        """Add a subject (a person) to a gallery."""
        return await self.send(calls.create_subject(gallery_id, name, metadata=metadata))

    async def list_subjects(self, gallery_id: str) -> list[Subject]:
        """A gallery's subjects, oldest first."""
        return await self.send(calls.list_subjects(gallery_id))

    async def get_subject(self, gallery_id: str, subject_id: str) -> Subject:
        """A subject with its face count."""
        return await self.send(calls.get_subject(gallery_id, subject_id))

    async def delete_subject(self, gallery_id: str, subject_id: str) -> None:
        """Delete a subject with its faces."""
        await self.send(calls.delete_subject(gallery_id, subject_id))

    async def enrol_faces(
        self,
        gallery_id: str,
        subject_id: str,
        images: ImageInput | Sequence[ImageInput],
        *,
        face_index: int | None = None,
        box: Sequence[float] | str | None = None,
        webhook_url: str | None = None,
        idempotency_key: str | None = None,
        wait: bool = False,
        timeout: float = DEFAULT_WAIT_TIMEOUT,
    ) -> JobPublic:
        """Enrol one image or a list of them (one face each, or ``face_index`` / ``box`` = ``(x, y, w, h)``): the
        ``enrol`` job, queued, or ended with ``wait=True`` (its result reports each image)."""
        job = await self.send(calls.enrol_faces(gallery_id, subject_id, images, face_index=face_index, box=box,
                                          webhook_url=webhook_url, idempotency_key=idempotency_key))  # fmt: skip
        return await self.wait_job(job.id, timeout) if wait else job

    async def list_faces(self, gallery_id: str, subject_id: str) -> list[Face]:
        """A subject's enrolled faces (no embeddings: see `export_gallery`)."""
        return (await self.send(calls.list_faces(gallery_id, subject_id))).items

    async def delete_face(self, gallery_id: str, subject_id: str, face_id: str) -> None:
        """Delete an enrolled face."""
        await self.send(calls.delete_face(gallery_id, subject_id, face_id))
