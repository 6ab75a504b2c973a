"""The job domain: records, the Redis store, the service the API uses."""

from detectflow.jobs.models import DetectflowError, ErrorCode, JobRecord, JobStatus
from detectflow.jobs.service import JobService
from detectflow.jobs.store import RedisJobStore

__all__ = ["DetectflowError", "ErrorCode", "JobRecord", "JobStatus", "JobService", "RedisJobStore"]
