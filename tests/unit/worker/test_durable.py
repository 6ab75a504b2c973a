"""Unit tests of the transitions that wait out a Redis outage."""

from __future__ import annotations

import pytest
import redis

from detectflow.worker.durable import backoff_delays, durably


def test_backoff_delays_double_up_to_the_cap_within_the_budget():
    delays = list(backoff_delays(10.0, first_s=0.5, max_s=2.0))
    assert delays[:4] == [0.5, 1.0, 2.0, 2.0] and sum(delays) <= 10.0


def test_durably_retries_while_redis_is_unreachable():
    calls, slept = [], []

    def call():
        calls.append(1)
        if len(calls) < 3:
            raise redis.ConnectionError("restarting")
        return "applied"

    assert durably(call, "t", budget_s=5, sleep=slept.append) == "applied"
    assert len(calls) == 3 and slept == [0.1, 0.2]


def test_durably_gives_up_after_its_budget_and_never_hides_other_errors():
    def down():
        raise redis.ConnectionError("down")

    with pytest.raises(redis.ConnectionError):
        durably(down, "t", budget_s=1, sleep=lambda s: None)

    def bug():
        raise ValueError("not an outage")

    with pytest.raises(ValueError):
        durably(bug, "t", sleep=lambda s: None)
