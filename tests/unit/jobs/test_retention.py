"""Unit tests of when a job expires: job_ttl after its end, never while unfinished."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from detectflow.jobs.records import JobRecord, JobStatus
from detectflow.jobs.retention import expires_at

CREATED = datetime(2026, 1, 1, tzinfo=UTC)


def test_retention_unfinished_jobs_never_expire():
    job = JobRecord(id="a", task="face", created_at=CREATED)
    for status in (JobStatus.queued, JobStatus.running, JobStatus.retrying):
        assert expires_at(job.model_copy(update={"status": status}), 60) is None


def test_retention_counts_from_the_end():
    done = JobRecord(
        id="a", task="face", created_at=CREATED, status=JobStatus.succeeded, finished_at=CREATED + timedelta(days=3)
    )
    assert expires_at(done, 60) == CREATED + timedelta(days=3, seconds=60)
