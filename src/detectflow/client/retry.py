"""Retry decisions: exponential backoff with full jitter, Retry-After parsing, which failures to retry."""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime

__all__ = [
    "RetryPolicy",
    "backoff_delay",
    "parse_retry_after",
    "next_delay",
    "DEFAULT_MAX_ATTEMPTS",
    "DEFAULT_BACKOFF_BASE",
    "DEFAULT_BACKOFF_CAP",
    "DEFAULT_MAX_RETRY_AFTER",
]

DEFAULT_MAX_ATTEMPTS = 5  # tries of one call, the first included
DEFAULT_BACKOFF_BASE = 0.5  # seconds: the first backoff's ceiling, doubled on every retry
DEFAULT_BACKOFF_CAP = 10.0  # seconds: the longest backoff
DEFAULT_MAX_RETRY_AFTER = 60.0  # seconds: a longer Retry-After is not waited for; the error is raised
RETRY_STATUSES = frozenset({429, 503})


@dataclass(frozen=True)
class RetryPolicy:
    """How a client retries one call.

    Parameters
    ----------
    max_attempts
        Tries of one call, the first included (1: never retry).
    backoff_base, backoff_cap
        Seconds: the n-th retry waits a random time in ``[0, min(cap, base * 2**n))`` ("full jitter").
    max_retry_after
        Seconds: a ``Retry-After`` above this is not waited for; the error is raised at once.
    statuses
        HTTP statuses that are retried (the server did not act on the request).
    """

    max_attempts: int = DEFAULT_MAX_ATTEMPTS
    backoff_base: float = DEFAULT_BACKOFF_BASE
    backoff_cap: float = DEFAULT_BACKOFF_CAP
    max_retry_after: float = DEFAULT_MAX_RETRY_AFTER
    statuses: frozenset[int] = RETRY_STATUSES

    def __post_init__(self) -> None:
        if self.max_attempts < 1:
            raise ValueError("max_attempts must be at least 1")
        if self.backoff_base < 0 or self.backoff_cap < 0 or self.max_retry_after < 0:
            raise ValueError("backoff_base, backoff_cap and max_retry_after must not be negative")


def backoff_delay(retry: int, base: float, cap: float, rand: float) -> float:
    """The wait before retry number ``retry`` (0 for the first): full jitter over an exponential ceiling.

    Parameters
    ----------
    retry
        Retries made so far (0 before the first retry).
    base, cap
        Seconds: the ceiling is ``min(cap, base * 2**retry)``.
    rand
        A random number in ``[0, 1)``.

    Returns
    -------
    float
        Seconds, in ``[0, ceiling)``.
    """
    ceiling = cap if retry >= 64 else min(cap, base * 2**retry)  # 2**64 s is "cap" already
    return rand * ceiling


def parse_retry_after(value: str | None, now: datetime | None = None) -> float | None:
    """Seconds to wait from a ``Retry-After`` header (delay-seconds or an HTTP-date, RFC 9110 §10.2.3).

    Parameters
    ----------
    value
        The header's value, or None when absent.
    now
        The current time, for an HTTP-date (default: now, UTC).

    Returns
    -------
    float or None
        Seconds (never negative), or None when the header is absent or unreadable.
    """
    if value is None:
        return None
    text = value.strip()
    if not text:
        return None
    try:
        seconds = float(text)
    except ValueError:
        try:
            when = parsedate_to_datetime(text)
        except (TypeError, ValueError, IndexError):
            return None
        if when.tzinfo is None:  # "-0000": UTC by RFC 5322
            when = when.replace(tzinfo=UTC)
        seconds = (when - (now or datetime.now(UTC))).total_seconds()
    if math.isnan(seconds) or math.isinf(seconds):
        return None
    return max(0.0, seconds)


def next_delay(
    policy: RetryPolicy,
    attempt: int,
    rand: float,
    *,
    status: int | None = None,
    retry_after: float | None = None,
    connect_error: bool = False,
    idempotent: bool = False,
) -> float | None:
    """Whether to retry a failed try, and after how long.

    Parameters
    ----------
    policy
        The retry policy.
    attempt
        Tries made so far, the failed one included (1 after the first try).
    rand
        A random number in ``[0, 1)`` for the jitter.
    status
        The HTTP status received, or None when the request failed in transport.
    retry_after
        Seconds the server asked to wait (its ``Retry-After``), if any.
    connect_error
        The transport failed before the request was sent (refused, unreachable): always safe to retry.
    idempotent
        Sending the request twice does no harm (GET, DELETE, or a submit with an idempotency key).

    Returns
    -------
    float or None
        Seconds to wait before the next try, or None to give up and raise.
    """
    if attempt >= policy.max_attempts:
        return None
    backoff = backoff_delay(attempt - 1, policy.backoff_base, policy.backoff_cap, rand)
    if status is None:
        return backoff if connect_error or idempotent else None
    if status not in policy.statuses:
        return None
    if retry_after is None:
        return backoff
    if retry_after > policy.max_retry_after:
        return None
    # a little jitter on top, so clients told the same Retry-After do not come back in lockstep
    return retry_after + rand * min(policy.backoff_base, 1.0)
