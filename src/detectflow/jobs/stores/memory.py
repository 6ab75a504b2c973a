"""An in-memory JobStore and enqueuer for fast unit tests of the service (as Dramatiq ships a stub broker)."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from detectflow.jobs.kinds import JobKind, kind_of
from detectflow.jobs.records import JobRecord, JobStatus, utcnow
from detectflow.jobs.store import Admission, Cursor, JobFilter, QueuedMessage, Submitted, created_us

__all__ = ["MemoryJobStore", "StubEnqueuer"]


@dataclass
class StubEnqueuer:
    """Builds plain messages; the store records the ones it sends in ``sent`` as ``(queue, job id)``."""

    def message(self, kind: JobKind, job_id: str) -> QueuedMessage:
        return QueuedMessage(kind.queue, f"m-{job_id}", job_id.encode())


class MemoryJobStore:
    """The JobStore protocol over dicts, with the Redis store's semantics.

    Expiry follows ``clock`` (seconds; ``time.monotonic`` by default, a settable one in tests).
    Queue depth counts unfinished jobs of a queue, as the ``.msgs`` hashes do, since every job
    is enqueued with its record; ``sent`` lists the messages as ``(queue, job id)``.
    ``mark_running``/``mark_finished`` play the worker's part.
    """

    def __init__(self, ttl_seconds: int = 86400, clock: Callable[[], float] = time.monotonic) -> None:
        self.ttl = ttl_seconds
        self.clock = clock
        self._jobs: dict[str, tuple[float, JobRecord]] = {}
        self._blobs: dict[str, tuple[float, bytes]] = {}
        self._idempotency: dict[tuple[str, str], tuple[float, tuple[str, str]]] = {}
        self.finished: list[tuple[str, float]] = []  # (task, clock) of each final transition
        self.sent: list[tuple[str, str]] = []

    # --- expiry ----------------------------------------------------------------------
    def _live(self, table: dict[str, tuple[float, Any]], key: str) -> Any:
        entry = table.get(key)
        if entry is None:
            return None
        if entry[0] <= self.clock():
            del table[key]
            return None
        return entry[1]

    def _expires(self) -> float:
        return self.clock() + self.ttl

    # --- JobStore --------------------------------------------------------------------
    async def submit(self, job: JobRecord, image: bytes, message: QueuedMessage, admission: Admission) -> Submitted:
        idem = (job.tenant, admission.idempotency_key) if admission.idempotency_key else None
        if idem is not None:
            bound = self._live(self._idempotency, idem)
            if bound is not None and self._live(self._jobs, bound[0]) is not None:
                return Submitted("replayed", job_id=bound[0], fingerprint=bound[1])
        depth = await self.queue_depth(message.queue)
        if depth >= admission.max_queue_depth:
            return Submitted("queue_full", count=depth)
        queued = self._unfinished(job.tenant)
        if admission.max_queued_jobs is not None and queued >= admission.max_queued_jobs:
            return Submitted("quota_exceeded", count=queued)
        self._jobs[job.id] = (self._expires(), job.model_copy())
        self._blobs[f"{job.id}:image"] = (self._expires(), image)
        if idem is not None:
            self._idempotency[idem] = (self._expires(), (job.id, admission.fingerprint))
        self.sent.append((message.queue, job.id))
        return Submitted("created")

    def _unfinished(self, tenant: str) -> int:
        return sum(
            1
            for jid in list(self._jobs)
            if (job := self._live(self._jobs, jid)) is not None and job.tenant == tenant and not job.status.is_final
        )

    async def get(self, job_id: str) -> JobRecord | None:
        job = self._live(self._jobs, job_id)
        return None if job is None else job.model_copy()

    async def image(self, job_id: str) -> bytes | None:
        return self._live(self._blobs, f"{job_id}:image")

    async def annotated(self, job_id: str) -> bytes | None:
        return self._live(self._blobs, f"{job_id}:annotated")

    async def save_annotated(self, job_id: str, png: bytes) -> None:
        entry = self._jobs.get(job_id)
        self._blobs[f"{job_id}:annotated"] = (entry[0] if entry else self._expires(), png)

    async def cancel(self, job_id: str, running: bool = False) -> tuple[bool, str | None]:
        allowed = (JobStatus.queued, JobStatus.running) if running else (JobStatus.queued,)
        return self._transition(job_id, allowed, JobStatus.cancelled)

    async def queue_depth(self, queue: str) -> int:
        return sum(
            1
            for jid in list(self._jobs)
            if (job := self._live(self._jobs, jid)) is not None
            and not job.status.is_final
            and kind_of(job.task).queue == queue
        )

    async def drain_rate(self, task: str, window: float = 60.0) -> float:
        now = self.clock()
        return sum(1 for t, at in self.finished if t == task and now - at <= window) / window

    async def list_jobs(
        self, tenant: str, limit: int, cursor: Cursor | None, where: JobFilter, max_scanned: int
    ) -> tuple[list[JobRecord], Cursor | None]:
        jobs = [j for jid in list(self._jobs) if (j := self._live(self._jobs, jid)) is not None and j.tenant == tenant]
        ordered = sorted(((created_us(j), j.id, j) for j in jobs), key=lambda e: (e[0], e[1]), reverse=True)
        low = where.min_score
        kept, last, scanned = [], cursor, 0
        for score, jid, job in ordered:
            if (cursor is not None and not cursor.is_after(score, jid)) or (low is not None and score <= low):
                continue
            scanned += 1
            last = Cursor(score, jid)
            if where.keeps(job):
                kept.append(job.model_copy())
            if len(kept) == limit or scanned >= max_scanned:
                return kept, last
        return kept, None

    # --- the worker's part -----------------------------------------------------------
    def _transition(self, job_id: str, allowed: tuple[JobStatus, ...], new: JobStatus, **fields: Any):
        job = self._live(self._jobs, job_id)
        if job is None:
            return False, None
        old = job.status
        if old not in allowed:
            return False, old.value
        if new.is_final:
            fields.setdefault("finished_at", utcnow())
            self.finished.append((job.task.value, self.clock()))
        self._jobs[job_id] = (self._jobs[job_id][0], job.model_copy(update={"status": new, **fields}))
        return True, old.value

    def mark_running(self, job_id: str) -> tuple[bool, str | None]:
        """queued|running -> running, one more attempt."""
        job = self._live(self._jobs, job_id)
        attempts = job.attempts + 1 if job is not None else 0
        return self._transition(
            job_id, (JobStatus.queued, JobStatus.running), JobStatus.running, started_at=utcnow(), attempts=attempts
        )

    def mark_finished(self, job_id: str, status: JobStatus, **fields: Any) -> tuple[bool, str | None]:
        """running -> a final status, with its fields (``result`` or ``error``)."""
        return self._transition(job_id, (JobStatus.running,), status, **fields)
