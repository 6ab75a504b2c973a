"""The JobStore protocol the service depends on, and the list cursor both stores share."""

from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass
from datetime import datetime
from typing import Literal, Protocol

from detectflow.jobs.errors import DetectflowError, ErrorCode
from detectflow.jobs.records import JobRecord, JobStatus

__all__ = [
    "JobStore",
    "JobFilter",
    "Cursor",
    "QueuedMessage",
    "Admission",
    "Submitted",
    "encode_cursor",
    "decode_cursor",
    "created_us",
]


def created_us(job: JobRecord) -> int:
    """A job's position in the listing: its creation time in microseconds (exact in a Redis score)."""
    return int(job.created_at.timestamp() * 1_000_000)


@dataclass(frozen=True, slots=True)
class Cursor:
    """Where a page ended: the last job's creation time (µs) and id; the next page starts after it."""

    created_us: int
    job_id: str

    def is_after(self, score: int, job_id: str) -> bool:
        """Whether a job at (``score``, ``job_id``) comes after this cursor, newest first."""
        return score < self.created_us or (score == self.created_us and job_id < self.job_id)


def encode_cursor(cursor: Cursor) -> str:
    """An opaque, URL-safe token for ``cursor``."""
    return base64.urlsafe_b64encode(f"{cursor.created_us}:{cursor.job_id}".encode()).decode().rstrip("=")


def decode_cursor(token: str) -> Cursor:
    """Parse a token made by :func:`encode_cursor`.

    Raises
    ------
    DetectflowError
        ``validation_error`` for anything else.
    """
    try:
        raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)).decode()
        score, _, job_id = raw.partition(":")
        if not job_id or not job_id.isalnum():
            raise ValueError(raw)
        return Cursor(int(score), job_id)
    except (ValueError, binascii.Error, UnicodeDecodeError):
        raise DetectflowError(
            ErrorCode.validation_error, "cursor: not a cursor returned by this API.", {"field": "cursor"}
        ) from None


@dataclass(frozen=True, slots=True)
class JobFilter:
    """What a listing keeps: all jobs when every field is None."""

    status: JobStatus | None = None
    task: str | None = None
    created_after: datetime | None = None

    def keeps(self, job: JobRecord) -> bool:
        return (self.status is None or job.status is self.status) and (self.task is None or job.task == self.task)

    @property
    def min_score(self) -> int | None:
        """Lowest creation time (µs, exclusive) a kept job can have."""
        return None if self.created_after is None else int(self.created_after.timestamp() * 1_000_000)


@dataclass(frozen=True, slots=True)
class QueuedMessage:
    """A queue message ready to store: its queue, the broker's id for it, its encoded body."""

    queue: str
    message_id: str
    data: bytes


@dataclass(frozen=True, slots=True)
class Admission:
    """What a submission must pass, checked atomically with the job's creation.

    ``max_queued_jobs`` (None: unlimited) bounds the tenant's unfinished jobs; ``max_queue_depth``
    the kind's queue (every tenant's). A bound ``idempotency_key`` replays its job instead.
    """

    max_queue_depth: int
    max_queued_jobs: int | None = None
    idempotency_key: str | None = None
    fingerprint: str = ""


@dataclass(frozen=True, slots=True)
class Submitted:
    """How a submission ended: created, replayed (``job_id``/``fingerprint`` of the earlier job),
    or refused with the count that was at its bound (``queue_full``, ``quota_exceeded``)."""

    outcome: Literal["created", "replayed", "queue_full", "quota_exceeded"]
    job_id: str | None = None
    fingerprint: str | None = None
    count: int = 0


class JobStore(Protocol):
    """Where jobs live for the API: Redis in production (``stores.redis``), memory in unit tests (``stores.memory``).

    Transitions by workers go through the synchronous Redis store; this is the API's side.
    """

    ttl: int

    async def submit(self, job: JobRecord, image: bytes, message: QueuedMessage, admission: Admission) -> Submitted:
        """In one atomic step: replay a bound idempotency key, or check the bounds, then store the job
        and its image (expiring after the TTL), index it for its tenant, and put ``message`` on its
        queue. A job is never stored without its message, nor its message sent without the job, and
        concurrent submissions cannot overshoot a bound or bind one key twice.
        """
        ...

    async def get(self, job_id: str) -> JobRecord | None: ...

    async def image(self, job_id: str) -> bytes | None: ...

    async def annotated(self, job_id: str) -> bytes | None: ...

    async def save_annotated(self, job_id: str, png: bytes) -> None: ...

    async def cancel(self, job_id: str, running: bool = False) -> tuple[bool, str | None]:
        """queued (or, with ``running``, running) -> cancelled; ``(applied, previous status or None if missing)``."""
        ...

    async def queue_depth(self, queue: str) -> int:
        """Unfinished work of ``queue``: waiting, in flight and waiting for a retry."""
        ...

    async def drain_rate(self, task: str) -> float:
        """Jobs of ``task`` finished per second, recently."""
        ...

    async def list_jobs(
        self, tenant: str, limit: int, cursor: Cursor | None, where: JobFilter, max_scanned: int
    ) -> tuple[list[JobRecord], Cursor | None]:
        """A tenant's jobs newest first after ``cursor`` that ``where`` keeps, at most ``limit``.

        At most ``max_scanned`` jobs are read; the returned cursor (None at the end) continues
        after the last one read, so a sparse filter gives short pages rather than slow ones.
        """
        ...
