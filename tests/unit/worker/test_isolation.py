"""Unit tests of the shared/exclusive lock that makes crash suspects run alone."""

from __future__ import annotations

import threading
import time

from detectflow.worker.isolation import SharedExclusiveLock


def test_isolation_shared_holders_run_together():
    lock = SharedExclusiveLock()
    lock.acquire(False)
    lock.acquire(False)  # would block forever if shared holders excluded each other
    lock.release(False)
    lock.release(False)


def test_isolation_exclusive_waits_for_shared_and_goes_before_new_shared():
    lock = SharedExclusiveLock()
    order: list[str] = []
    lock.acquire(False)

    def suspect():
        with lock.hold(True):
            order.append("suspect")
            time.sleep(0.05)

    def normal():
        with lock.hold(False):
            order.append("normal")

    t1 = threading.Thread(target=suspect)
    t1.start()
    time.sleep(0.05)
    t2 = threading.Thread(target=normal)
    t2.start()
    time.sleep(0.05)
    assert order == []  # the suspect waits for the running job; the new job waits behind the suspect
    lock.release(False)
    t1.join(2)
    t2.join(2)
    assert order == ["suspect", "normal"]
