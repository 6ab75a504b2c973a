"""What the client raises: the API's error body, a failed transport, an open circuit."""

from __future__ import annotations

from typing import Any

__all__ = ["ClientError", "ApiError", "TransportFailed", "CircuitOpenError", "JobWaitTimeout"]


class ClientError(Exception):
    """Base of every error the detectflow client raises."""


class ApiError(ClientError):
    """The API answered with an error (status >= 400): its ``code``, ``message`` and ``details``.

    Attributes
    ----------
    status_code
        The HTTP status.
    code
        The API's stable error code (``rate_limited``, ``job_not_found``, ...), or ``http_<status>`` when the
        body is not the API's error body (a proxy's page, say).
    message, details
        The API's message and machine-readable details.
    retry_after
        Seconds the server asked to wait (its ``Retry-After``), when it sent one.
    request_id
        The request's X-Request-ID, to quote in bug reports.
    """

    def __init__(
        self,
        status_code: int,
        code: str,
        message: str,
        details: dict[str, Any] | None = None,
        *,
        retry_after: float | None = None,
        request_id: str | None = None,
    ) -> None:
        super().__init__(f"{code}: {message}")
        self.status_code = status_code
        self.code = code
        self.message = message
        self.details = details or {}
        self.retry_after = retry_after
        self.request_id = request_id


class TransportFailed(ClientError):
    """The request did not get an answer (refused, reset, timed out) after every retry; ``__cause__`` says why."""


class CircuitOpenError(ClientError):
    """The circuit breaker is open after consecutive failures: no request was sent.

    Attributes
    ----------
    retry_in
        Seconds until the breaker lets a trial request through.
    """

    def __init__(self, retry_in: float) -> None:
        super().__init__(f"the API failed repeatedly; not calling it for another {retry_in:.1f} s")
        self.retry_in = retry_in


class JobWaitTimeout(ClientError, TimeoutError):
    """A job did not end within the wait; ``job`` is its last state."""

    def __init__(self, job: Any, timeout: float) -> None:
        super().__init__(f"job {job.id} is still {job.status} after {timeout:g} s")
        self.job = job
