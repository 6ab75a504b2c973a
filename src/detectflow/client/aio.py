"""`AsyncClient`: the asyncio detectflow client (httpx), call for call the same as `Client`."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from datetime import datetime
from typing import TypeVar

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
                resp = await self._http.request(call.method, call.path, **call.request_kwargs())
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
        image: ImageInput,
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
    ) -> JobPublic:
        """Submit an image or a video (a path, bytes or a binary file object) for ``task``; returns the queued job.

        Parameters
        ----------
        image
            The image: a path, its bytes, or a file object opened ``"rb"`` (read once).
        task
            What to detect: ``face`` or ``object``.
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
        """
        return await self.send(calls.submit_job(image, task, webhook_url=webhook_url, idempotency_key=idempotency_key,
                                          filename=filename, video={"sample_fps": sample_fps, "max_frames": max_frames,
                                          "start_ms": start_ms, "end_ms": end_ms, "track": track}))  # fmt: skip

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
