"""When a job's record, image and outputs expire: job_ttl after the job ends; never while it is unfinished."""

from __future__ import annotations

from datetime import datetime, timedelta

from detectflow.jobs.records import JobRecord

__all__ = ["expires_at"]


def expires_at(job: JobRecord, ttl_seconds: int) -> datetime | None:
    """The moment ``job`` and everything it owns expire, or None while it is unfinished.

    Redis applies it to the job's own keys in the final transition (``jobs.stores.redis``); a blob
    store outside Redis deletes a job's blobs from this moment on.

    Parameters
    ----------
    job
        The job's record.
    ttl_seconds
        ``Settings.job_ttl_seconds``.
    """
    if not job.status.is_final or job.finished_at is None:
        return None
    return job.finished_at + timedelta(seconds=ttl_seconds)
