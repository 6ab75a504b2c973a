"""The request core both clients share: headers, the breaker check, and the retry decision of each try."""

from __future__ import annotations

import logging
import random
from collections.abc import Callable, Mapping

import httpx

from detectflow.client.breaker import CircuitBreaker
from detectflow.client.calls import Call
from detectflow.client.credentials import resolve_api_key, resolve_api_url
from detectflow.client.errors import CircuitOpenError, TransportFailed
from detectflow.client.retry import RetryPolicy, next_delay, parse_retry_after

__all__ = ["Engine", "client_headers"]

log = logging.getLogger("detectflow.client")

#: Transport errors raised before the request left: retrying them never repeats a request.
_NOT_SENT = (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout)


def client_headers(api_key: str | None, extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """The headers of every request: the client's User-Agent and ``Authorization: Bearer`` when there is a key."""
    from detectflow import __version__

    headers = {"User-Agent": f"detectflow-client/{__version__}", **(extra or {})}
    if api_key:
        headers["Authorization"] = f"Bearer {api_key}"
    return headers


class Engine:
    """Retry and breaker bookkeeping of a client's calls (no I/O: the clients send and sleep)."""

    def __init__(
        self,
        base_url: str | None,
        api_key: str | None,
        retry: RetryPolicy | None,
        breaker: CircuitBreaker | None,
        rng: Callable[[], float] = random.random,
    ) -> None:
        self.base_url = resolve_api_url(base_url)
        self.api_key = resolve_api_key(api_key)
        self.retry = retry or RetryPolicy()
        self.breaker = breaker or CircuitBreaker()
        self._rng = rng

    def admit(self) -> None:
        """Raise `CircuitOpenError` when the breaker holds calls back."""
        if not self.breaker.allow():
            raise CircuitOpenError(self.breaker.retry_in())

    def after_response(self, call: Call, attempt: int, resp: httpx.Response) -> float | None:
        """Seconds to wait before trying ``call`` again after this answer, or None to read it."""
        failed = resp.status_code >= 500 and resp.status_code not in call.ok
        self.breaker.record_failure() if failed else self.breaker.record_success()
        if resp.status_code < 400 or resp.status_code in call.ok or not call.retry:
            return None
        retry_after = parse_retry_after(resp.headers.get("Retry-After"))
        delay = next_delay(self.retry, attempt, self._rng(), status=resp.status_code, retry_after=retry_after,
                           idempotent=call.idempotent)  # fmt: skip
        if delay is not None:
            log.info("%s %s: HTTP %s, retry %d in %.2f s", call.method, call.path, resp.status_code, attempt, delay)
        return delay

    def after_error(self, call: Call, attempt: int, exc: httpx.TransportError) -> float:
        """Seconds to wait before trying ``call`` again after a transport error; raises `TransportFailed` if not."""
        self.breaker.record_failure()
        delay = None
        if call.retry:
            delay = next_delay(self.retry, attempt, self._rng(), connect_error=isinstance(exc, _NOT_SENT),
                               idempotent=call.idempotent)  # fmt: skip
        if delay is None:
            raise TransportFailed(f"{call.method} {self.base_url}{call.path}: {type(exc).__name__}: {exc}") from exc
        log.info("%s %s: %s, retry %d in %.2f s", call.method, call.path, type(exc).__name__, attempt, delay)
        return delay
