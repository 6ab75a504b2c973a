"""The job domain: kinds, records, the store seam and the service the API uses."""

from detectflow.jobs.errors import DetectflowError, ErrorCode
from detectflow.jobs.records import JobPublic, JobRecord, JobStatus

__all__ = ["DetectflowError", "ErrorCode", "JobPublic", "JobRecord", "JobStatus"]
