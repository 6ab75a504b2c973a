"""Job transitions that outlast a Redis restart: retried while Redis is unreachable, before the message is acked."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import TypeVar

import redis

__all__ = ["durably", "DEFAULT_OUTAGE_SECONDS", "backoff_delays"]

log = logging.getLogger("detectflow.worker")

T = TypeVar("T")

#: Longest Redis outage a transition waits out (seconds); past it the error propagates.
DEFAULT_OUTAGE_SECONDS = 120.0
#: First and longest delay between two tries (seconds).
DEFAULT_FIRST_DELAY_SECONDS, DEFAULT_MAX_DELAY_SECONDS = 0.1, 2.0

#: What a restarting or unreachable Redis raises (a loading Redis answers BusyLoadingError, a ConnectionError).
_TRANSIENT = (redis.ConnectionError, redis.TimeoutError)


def backoff_delays(budget_s: float, first_s: float = DEFAULT_FIRST_DELAY_SECONDS, max_s: float = DEFAULT_MAX_DELAY_SECONDS):
    """Delays (seconds) between tries: doubling from ``first_s`` up to ``max_s``, summing to at most ``budget_s``."""
    delay, spent = first_s, 0.0
    while spent + delay <= budget_s:
        yield delay
        spent += delay
        delay = min(delay * 2, max_s)


def durably(call: Callable[[], T], what: str, budget_s: float = DEFAULT_OUTAGE_SECONDS, sleep=time.sleep) -> T:
    """``call()``, tried again while Redis is unreachable, for up to ``budget_s`` seconds.

    Dramatiq swallows what its middleware hooks raise and then acks the message: a transition lost
    to a Redis restart would leave its job ``running`` (or ``queued``) with no message left to finish
    it. Waiting the outage out here keeps the transition ahead of the ack.
    """
    for delay in backoff_delays(budget_s):
        try:
            return call()
        except _TRANSIENT as exc:
            log.warning("%s: Redis unreachable (%s); trying again in %.1f s", what, type(exc).__name__, delay)
            sleep(delay)
    return call()
