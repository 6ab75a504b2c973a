"""A circuit breaker: fail fast after consecutive failures, try again once after a cool-down."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from enum import StrEnum

__all__ = ["BreakerState", "CircuitBreaker", "DEFAULT_FAILURE_THRESHOLD", "DEFAULT_RESET_TIMEOUT"]

DEFAULT_FAILURE_THRESHOLD = 5  # consecutive failures that open the circuit
DEFAULT_RESET_TIMEOUT = 30.0  # seconds the circuit stays open before one trial call


class BreakerState(StrEnum):
    closed = "closed"  # calls go through
    open = "open"  # calls fail at once
    half_open = "half_open"  # one trial call goes through; its outcome closes or reopens the circuit


class CircuitBreaker:
    """Consecutive-failure circuit breaker (closed → open → half-open → closed or open).

    Pure state and a clock: no I/O, so tests drive it with a fake clock. Thread-safe.

    Parameters
    ----------
    failure_threshold
        Consecutive failures that open the circuit.
    reset_timeout
        Seconds the circuit stays open before it lets one trial call through (half-open).
    clock
        Monotonic seconds (``time.monotonic`` by default).
    """

    def __init__(
        self,
        failure_threshold: int = DEFAULT_FAILURE_THRESHOLD,
        reset_timeout: float = DEFAULT_RESET_TIMEOUT,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if failure_threshold < 1:
            raise ValueError("failure_threshold must be at least 1")
        self.failure_threshold = failure_threshold
        self.reset_timeout = reset_timeout
        self._clock = clock
        self._lock = threading.Lock()
        self._failures = 0
        self._opened_at: float | None = None
        self._trial_out = False

    @property
    def state(self) -> BreakerState:
        """The state now (an open circuit turns half-open once its reset timeout has passed)."""
        with self._lock:
            return self._state()

    def _state(self) -> BreakerState:
        if self._opened_at is None:
            return BreakerState.closed
        if self._clock() - self._opened_at >= self.reset_timeout:
            return BreakerState.half_open
        return BreakerState.open

    def retry_in(self) -> float:
        """Seconds until an open circuit lets a trial call through (0 when it is not open)."""
        with self._lock:
            if self._opened_at is None:
                return 0.0
            return max(0.0, self.reset_timeout - (self._clock() - self._opened_at))

    def allow(self) -> bool:
        """Whether a call may go out now; in half-open, only one trial call at a time is allowed."""
        with self._lock:
            state = self._state()
            if state is BreakerState.closed:
                return True
            if state is BreakerState.half_open and not self._trial_out:
                self._trial_out = True
                return True
            return False

    def record_success(self) -> None:
        """A call reached a healthy server: close the circuit."""
        with self._lock:
            self._failures = 0
            self._opened_at = None
            self._trial_out = False

    def record_failure(self) -> None:
        """A call failed (transport error or 5xx): count it; open the circuit at the threshold or after a trial."""
        with self._lock:
            trial = self._trial_out
            self._trial_out = False
            self._failures += 1
            if trial or self._failures >= self.failure_threshold:
                self._opened_at = self._clock()
