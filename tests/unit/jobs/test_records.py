"""Unit tests of the job model family: stored record -> public view (API answers and webhook bodies)."""

from __future__ import annotations

import json
from datetime import UTC, datetime

from detectflow.jobs.records import JobError, JobLinks, JobPublic, JobRecord, JobStatus, WebhookState
from detectflow.jobs.results import Box, Detection, DetectionResult


def _result(**detection) -> DetectionResult:
    return DetectionResult.model_validate(
        {
            "image": {"width": 4, "height": 3},
            "detections": [{"label": "cup", "score": 0.5, "box": {"x": 0, "y": 0, "width": 1, "height": 1}, **detection}],
            "model": {"name": "m", "version": "1", "sha256": "s", "provider": "CPUExecutionProvider"},
            "timings_ms": {"queued": 1, "inference": 2, "total": 3},
        }
    )


def test_record_public_hides_internal_fields_and_links_resources():
    job = JobRecord(
        id="abc",
        task="face",
        status=JobStatus.failed,
        created_at=datetime(2026, 1, 1, tzinfo=UTC),
        error=JobError(code="invalid_image", message="bad"),
        image_sha256="f" * 64,
        idempotency_key="k",
        webhook=WebhookState(url="http://127.0.0.1/h"),
    )
    out = job.public("http://api:8000/").model_dump(mode="json")
    assert out["links"] == JobLinks.of("abc", "http://api:8000").model_dump()
    assert out["links"]["annotated"] == "http://api:8000/v1/jobs/abc/annotated"
    assert out["error"] == {"code": "invalid_image", "message": "bad"}
    assert out["webhook"]["state"] == "pending"
    assert "image_sha256" not in out and "idempotency_key" not in out and "request_id" not in out


def test_public_omits_webhook_when_none_was_asked():
    out = JobRecord(id="a", task="object").public().model_dump(mode="json")
    assert "webhook" not in out and out["result"] is None and out["started_at"] is None


def test_result_omits_landmarks_of_objects_and_keeps_those_of_faces():
    objects = _result().model_dump(mode="json")["detections"][0]
    faces = _result(landmarks=[{"x": 1, "y": 2}] * 5).model_dump(mode="json")["detections"][0]
    assert "landmarks" not in objects and len(faces["landmarks"]) == 5


def test_public_is_the_webhook_body_and_round_trips():
    job = JobRecord(id="a", task="face", status=JobStatus.succeeded, result=_result())
    body = job.public("http://x").model_dump_json()
    again = JobPublic.model_validate(json.loads(body))
    assert again.result.detections[0].box == Box(x=0, y=0, width=1, height=1)
    assert isinstance(again.result.detections[0], Detection)


def test_job_status_final_states():
    assert {s for s in JobStatus if s.is_final} == {JobStatus.succeeded, JobStatus.failed, JobStatus.cancelled}
