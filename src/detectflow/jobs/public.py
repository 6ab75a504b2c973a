"""The public JSON form of a job, shared by the API and webhook payloads."""

from __future__ import annotations

from typing import Any

from detectflow.jobs.models import JobRecord

__all__ = ["job_links", "job_public"]


def job_links(job_id: str, base_url: str = "") -> dict[str, str]:
    base = f"{base_url.rstrip('/')}/v1/jobs/{job_id}"
    return {"self": base, "result": base, "annotated": f"{base}/annotated"}


def job_public(job: JobRecord, base_url: str = "") -> dict[str, Any]:
    """What clients see of a job (no internal fields such as the image hash)."""
    out: dict[str, Any] = {
        "id": job.id,
        "status": job.status.value,
        "task": job.task,
        "created_at": job.created_at.isoformat(),
        "started_at": job.started_at.isoformat() if job.started_at else None,
        "finished_at": job.finished_at.isoformat() if job.finished_at else None,
        "attempts": job.attempts,
        "error": job.error.model_dump() if job.error else None,
        "result": job.result,
        "links": job_links(job.id, base_url),
    }
    if job.webhook is not None:
        out["webhook"] = job.webhook.model_dump(mode="json")
    return out
