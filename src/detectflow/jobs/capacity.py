"""Waiting for capacity: whether a queued job's pool has no live worker, since when, and whether it waited too long."""

from __future__ import annotations

from datetime import UTC, datetime

from detectflow.jobs.records import JobRecord, JobStatus, WaitingFor

__all__ = ["capacity_wait", "waited_too_long"]


def capacity_wait(job: JobRecord, live_workers: int, last_seen: float | None, now: float) -> WaitingFor | None:
    """What a queued job is waiting for, or None (it is not queued, or its pool has a live worker).

    Parameters
    ----------
    job
        The job.
    live_workers
        Workers of the job's pool seen recently.
    last_seen
        When (unix seconds) a worker of the pool last beat; None if none ever did.
    now
        The current time, unix seconds.
    """
    if job.status is not JobStatus.queued or live_workers > 0:
        return None
    since = last_seen if last_seen is not None else job.created_at.timestamp()
    return WaitingFor(since=datetime.fromtimestamp(since, UTC), seconds=round(max(0.0, now - since), 3))


def waited_too_long(job: JobRecord, waiting: WaitingFor | None, now: float, bound_s: float) -> bool:
    """Whether ``job`` has waited for capacity longer than ``bound_s`` seconds (0: never): counted from
    its creation or from when its pool emptied, whichever is later."""
    if waiting is None or bound_s <= 0:
        return False
    return now - max(job.created_at.timestamp(), waiting.since.timestamp()) > bound_s
