"""The circuit breaker, driven by a fake clock."""

from __future__ import annotations

import pytest

from detectflow.client.breaker import BreakerState, CircuitBreaker


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


def test_breaker_opens_after_five_consecutive_failures(clock):
    breaker = CircuitBreaker(clock=clock)
    for _ in range(4):
        breaker.record_failure()
        assert breaker.allow() and breaker.state is BreakerState.closed
    breaker.record_failure()
    assert breaker.state is BreakerState.open
    assert not breaker.allow()
    assert breaker.retry_in() == pytest.approx(30.0)


def test_breaker_success_resets_the_count(clock):
    breaker = CircuitBreaker(clock=clock)
    for _ in range(4):
        breaker.record_failure()
    breaker.record_success()
    for _ in range(4):
        breaker.record_failure()
    assert breaker.state is BreakerState.closed


def test_breaker_turns_half_open_after_30_s_and_lets_one_trial_through(clock):
    # Given an open breaker
    breaker = CircuitBreaker(clock=clock)
    for _ in range(5):
        breaker.record_failure()
    # When 29.9 s pass it still refuses; at 30 s it is half-open
    clock.now += 29.9
    assert not breaker.allow()
    assert breaker.retry_in() == pytest.approx(0.1)
    clock.now += 0.1
    assert breaker.state is BreakerState.half_open
    # Then one trial goes out, and a second caller waits for its outcome
    assert breaker.allow()
    assert not breaker.allow()


def test_breaker_closes_when_the_trial_succeeds(clock):
    breaker = CircuitBreaker(clock=clock)
    for _ in range(5):
        breaker.record_failure()
    clock.now += 30
    assert breaker.allow()
    breaker.record_success()
    assert breaker.state is BreakerState.closed
    assert breaker.allow() and breaker.allow()


def test_breaker_reopens_for_another_30_s_when_the_trial_fails(clock):
    breaker = CircuitBreaker(clock=clock)
    for _ in range(5):
        breaker.record_failure()
    clock.now += 31
    assert breaker.allow()
    breaker.record_failure()
    assert breaker.state is BreakerState.open
    assert breaker.retry_in() == pytest.approx(30.0)
    clock.now += 30
    assert breaker.state is BreakerState.half_open


def test_breaker_threshold_and_timeout_are_settings(clock):
    breaker = CircuitBreaker(failure_threshold=2, reset_timeout=1.0, clock=clock)
    breaker.record_failure()
    breaker.record_failure()
    assert not breaker.allow()
    clock.now += 1.0
    assert breaker.allow()
    with pytest.raises(ValueError):
        CircuitBreaker(failure_threshold=0)
