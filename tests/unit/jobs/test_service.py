"""Unit tests of the pure parts of the job service and the public job form."""

from __future__ import annotations

from datetime import UTC, datetime

from detectflow.jobs.models import JobError, JobRecord, JobStatus, WebhookState
from detectflow.jobs.public import job_links, job_public
from detectflow.jobs.service import MAX_RETRY_AFTER, MIN_RETRY_AFTER, retry_after_seconds
from detectflow.jobs.store import Keys


def test_retry_after_seconds_follows_drain_rate():
    # 10 jobs over the limit draining at 2 jobs/s: about 6 s
    assert retry_after_seconds(depth=110, limit=100, drain_per_s=2.0) == 6


def test_retry_after_seconds_is_bounded():
    assert retry_after_seconds(100, 100, 1000.0) == MIN_RETRY_AFTER
    assert retry_after_seconds(10**6, 1, 0.01) == MAX_RETRY_AFTER
    assert retry_after_seconds(5, 1, 0.0) == 30  # nothing drained yet: a fixed guess


def test_job_public_hides_internal_fields_and_links_resources():
    job = JobRecord(
        id="abc",
        task="face",
        status=JobStatus.failed,
        created_at=datetime(2026, 1, 1, tzinfo=UTC),
        error=JobError(code="invalid_image", message="bad"),
        image_sha256="f" * 64,
        webhook=WebhookState(url="http://127.0.0.1/h"),
    )
    out = job_public(job, "http://api:8000/")
    assert out["links"] == job_links("abc", "http://api:8000")
    assert out["links"]["annotated"] == "http://api:8000/v1/jobs/abc/annotated"
    assert out["error"] == {"code": "invalid_image", "message": "bad"}
    assert out["webhook"]["state"] == "pending"
    assert "image_sha256" not in out and "idempotency_key" not in out


def test_keys_share_one_prefix_and_match_dramatiq_layout():
    keys = Keys("detectflow:ns:p1")
    assert keys.job("j").startswith("detectflow:ns:p1:job:")
    assert keys.queue_messages("detect.face") == "detectflow:ns:p1:detect.face.msgs"
    assert keys.delayed_messages("detect.face") == "detectflow:ns:p1:detect.face.DQ.msgs"


def test_job_status_final_states():
    assert {s for s in JobStatus if s.is_final} == {JobStatus.succeeded, JobStatus.failed, JobStatus.cancelled}
