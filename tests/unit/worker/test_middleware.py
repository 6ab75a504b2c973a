"""Unit tests of how a failure is reported."""

from __future__ import annotations

from dramatiq.middleware import TimeLimitExceeded

from detectflow.jobs.errors import DetectflowError, ErrorCode
from detectflow.worker.middleware import failure_of


def test_failure_of_keeps_the_code_of_a_detectflow_error():
    assert failure_of(DetectflowError(ErrorCode.invalid_image, "bad")) == ("invalid_image", "bad")


def test_failure_of_time_limit_is_timeout():
    assert failure_of(TimeLimitExceeded())[0] == "timeout"


def test_failure_of_other_exceptions_names_them():
    code, message = failure_of(ConnectionError("redis went away"))
    assert code == "worker_error" and message == "ConnectionError: redis went away"
