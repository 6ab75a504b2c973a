"""Suspect jobs run alone: a shared/exclusive lock between a worker process's threads.

A job redelivered after its worker died (a crash suspect) takes the lock exclusively, every other
job shares it. A poison job then dies alone: the jobs that happened to run beside it the first time
are suspects too, but each runs alone once and succeeds, instead of dying with it until the delivery
cap fails them as well. The standard library has no such lock, hence this one.
"""

from __future__ import annotations

import threading
from contextlib import contextmanager

__all__ = ["SharedExclusiveLock"]


class SharedExclusiveLock:
    """Many shared holders or one exclusive holder; a waiting exclusive holder goes before new shared ones."""

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._shared = 0
        self._exclusive = False
        self._waiting_exclusive = 0

    def acquire(self, exclusive: bool) -> None:
        with self._cond:
            if exclusive:
                self._waiting_exclusive += 1
                self._cond.wait_for(lambda: not self._exclusive and self._shared == 0)
                self._waiting_exclusive -= 1
                self._exclusive = True
            else:
                self._cond.wait_for(lambda: not self._exclusive and self._waiting_exclusive == 0)
                self._shared += 1

    def release(self, exclusive: bool) -> None:
        with self._cond:
            if exclusive:
                self._exclusive = False
            else:
                self._shared -= 1
            self._cond.notify_all()

    @contextmanager
    def hold(self, exclusive: bool):
        self.acquire(exclusive)
        try:
            yield
        finally:
            self.release(exclusive)
