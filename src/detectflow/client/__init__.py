"""detectflow.client: `Client` and `AsyncClient` for the detectflow API, with retries and a circuit breaker."""

from detectflow.client.aio import AsyncClient
from detectflow.client.breaker import BreakerState, CircuitBreaker
from detectflow.client.errors import ApiError, CircuitOpenError, ClientError, JobWaitTimeout, TransportFailed
from detectflow.client.retry import RetryPolicy
from detectflow.client.sync import Client
from detectflow.jobs.records import JobPage, JobPublic, JobStatus

__all__ = [
    "Client",
    "AsyncClient",
    "RetryPolicy",
    "CircuitBreaker",
    "BreakerState",
    "ClientError",
    "ApiError",
    "TransportFailed",
    "CircuitOpenError",
    "JobWaitTimeout",
    "JobPublic",
    "JobPage",
    "JobStatus",
]
