"""Unit tests of waiting for capacity: a queued job whose pool has no live worker."""

from __future__ import annotations

from datetime import UTC, datetime

from detectflow.jobs.capacity import capacity_wait, waited_too_long
from detectflow.jobs.records import JobRecord, JobStatus

CREATED = datetime(2026, 1, 1, tzinfo=UTC)
T0 = CREATED.timestamp()


def _job(status=JobStatus.queued) -> JobRecord:
    return JobRecord(id="a", task="face", created_at=CREATED, status=status)


def test_capacity_wait_none_with_a_live_worker_or_once_started():
    assert capacity_wait(_job(), 1, T0, T0 + 10) is None
    assert capacity_wait(_job(JobStatus.running), 0, T0, T0 + 10) is None


def test_capacity_wait_counts_from_the_last_beat_of_the_pool():
    waiting = capacity_wait(_job(), 0, T0 - 300, T0 + 60)
    assert waiting.reason == "capacity" and waiting.seconds == 360 and waiting.since.timestamp() == T0 - 300


def test_capacity_wait_from_creation_when_no_worker_was_ever_seen():
    assert capacity_wait(_job(), 0, None, T0 + 5).seconds == 5


def test_waited_too_long_counts_the_jobs_own_wait_and_zero_means_never():
    job = _job()
    waiting = capacity_wait(job, 0, T0 - 3600, T0 + 50)  # the pool emptied an hour before the job came
    assert not waited_too_long(job, waiting, T0 + 50, 60)
    assert waited_too_long(job, waiting, T0 + 61, 60)
    assert not waited_too_long(job, waiting, T0 + 1e6, 0)
    assert not waited_too_long(job, None, T0 + 1e6, 60)
