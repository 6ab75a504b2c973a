"""Backoff with full jitter, Retry-After parsing, and which failures are retried."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from detectflow.client.retry import RetryPolicy, backoff_delay, next_delay, parse_retry_after

NOW = datetime(2026, 12, 1, 12, 0, 0, tzinfo=UTC)


def test_backoff_delay_doubles_its_ceiling_up_to_the_cap():
    # the top of the jitter range (rand -> 1) is base * 2**retry, capped
    ceilings = [backoff_delay(n, 0.5, 10.0, 0.999999) for n in range(7)]
    assert ceilings == pytest.approx([0.5, 1, 2, 4, 8, 10, 10], rel=1e-5)


def test_backoff_delay_is_full_jitter_between_zero_and_the_ceiling():
    assert backoff_delay(3, 0.5, 10.0, 0.0) == 0.0
    assert backoff_delay(3, 0.5, 10.0, 0.5) == pytest.approx(2.0)


def test_backoff_delay_survives_huge_retry_counts():
    assert backoff_delay(10_000, 0.5, 10.0, 0.5) == pytest.approx(5.0)


@pytest.mark.parametrize(
    ("value", "seconds"),
    [("3", 3.0), (" 12 ", 12.0), ("0", 0.0), ("1.5", 1.5), ("-4", 0.0), ("Tue, 01 Dec 2026 12:00:30 GMT", 30.0),
     ("Tue, 01 Dec 2026 11:59:00 GMT", 0.0)],
)  # fmt: skip
def test_parse_retry_after_reads_seconds_and_http_dates(value, seconds):
    assert parse_retry_after(value, NOW) == pytest.approx(seconds)


@pytest.mark.parametrize("value", [None, "", "soon", "nan", "inf", "Tue, 99 Foo 2026"])
def test_parse_retry_after_ignores_absent_or_unreadable_values(value):
    assert parse_retry_after(value, NOW) is None


def test_next_delay_honours_retry_after_with_a_little_jitter():
    policy = RetryPolicy(backoff_base=0.5)
    assert next_delay(policy, 1, 0.0, status=429, retry_after=2.0) == 2.0
    assert 2.0 <= next_delay(policy, 1, 0.99, status=429, retry_after=2.0) < 2.5


def test_next_delay_backs_off_on_429_and_503_without_retry_after():
    policy = RetryPolicy(backoff_base=1.0, backoff_cap=100.0)
    assert next_delay(policy, 1, 0.5, status=503) == pytest.approx(0.5)
    assert next_delay(policy, 3, 0.5, status=429) == pytest.approx(2.0)


@pytest.mark.parametrize("status", [400, 401, 404, 409, 413, 500, 502])
def test_next_delay_never_retries_other_statuses(status):
    assert next_delay(RetryPolicy(), 1, 0.5, status=status, idempotent=True) is None


def test_next_delay_gives_up_on_a_retry_after_beyond_the_policy():
    assert next_delay(RetryPolicy(max_retry_after=60), 1, 0.5, status=429, retry_after=61) is None


def test_next_delay_stops_after_max_attempts():
    policy = RetryPolicy(max_attempts=3)
    assert next_delay(policy, 2, 0.5, connect_error=True) is not None
    assert next_delay(policy, 3, 0.5, connect_error=True) is None
    assert next_delay(RetryPolicy(max_attempts=1), 1, 0.5, status=503) is None


def test_next_delay_retries_a_lost_answer_only_when_idempotent():
    # Given a transport error after the request may have reached the server (reset, read timeout)
    policy = RetryPolicy()
    # Then only a request that is safe to repeat is retried; a refused connection always is
    assert next_delay(policy, 1, 0.5, idempotent=True) is not None
    assert next_delay(policy, 1, 0.5, idempotent=False) is None
    assert next_delay(policy, 1, 0.5, connect_error=True, idempotent=False) is not None


def test_retry_policy_rejects_nonsense():
    with pytest.raises(ValueError):
        RetryPolicy(max_attempts=0)
    with pytest.raises(ValueError):
        RetryPolicy(backoff_base=-1)
