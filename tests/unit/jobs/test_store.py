"""Unit tests of the list cursor and filter both stores share."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from detectflow.jobs.errors import DetectflowError
from detectflow.jobs.records import JobRecord, JobStatus
from detectflow.jobs.store import Cursor, JobFilter, decode_cursor, encode_cursor


def test_cursor_round_trips_and_is_opaque():
    token = encode_cursor(Cursor(1764023941944, "ab12"))
    assert ":" not in token and "=" not in token
    assert decode_cursor(token) == Cursor(1764023941944, "ab12")


@pytest.mark.parametrize("token", ["", "!!!", "bm90LWEtY3Vyc29y", encode_cursor(Cursor(1, "a b"))])
def test_cursor_refuses_what_the_api_did_not_make(token):
    with pytest.raises(DetectflowError) as err:
        decode_cursor(token)
    assert err.value.code == "validation_error"


def test_cursor_orders_newest_first_with_ids_breaking_ties():
    c = Cursor(100, "m")
    assert c.is_after(99, "z") and c.is_after(100, "a")
    assert not c.is_after(100, "m") and not c.is_after(100, "z") and not c.is_after(101, "a")


def test_filter_keeps_status_and_task():
    job = JobRecord(id="a", task="face", status=JobStatus.queued)
    assert JobFilter().keeps(job)
    assert JobFilter(status=JobStatus.queued, task="face").keeps(job)
    assert not JobFilter(status=JobStatus.failed).keeps(job) and not JobFilter(task="object").keeps(job)
    assert JobFilter(created_after=datetime(2026, 1, 1, tzinfo=UTC)).min_score == 1767225600000000
