"""Unit tests of the hard deadline's pure part: which job is overdue."""

from __future__ import annotations

from pathlib import Path

from detectflow.worker.deadline import Running, heartbeat_file, overdue


def test_overdue_none_within_the_deadline():
    running = {1: Running("a", 100.0), 2: Running("b", 103.0)}
    assert overdue(running, 110.0, 10.0) is None


def test_overdue_picks_the_longest_late_job():
    running = {1: Running("a", 100.0), 2: Running("b", 95.0), 3: Running("c", 109.0)}
    assert overdue(running, 110.0, 10.0).job_id == "b"


def test_overdue_nothing_running():
    assert overdue({}, 1e9, 1.0) is None


def test_heartbeat_file_is_per_process():
    assert heartbeat_file(Path("/hb"), 42) == Path("/hb/worker-42.beat")
