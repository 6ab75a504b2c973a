"""Unit tests of when a worker process is recycled."""

from __future__ import annotations

from detectflow.worker.recycle import recycle_reason, rss_mb


def test_recycle_reason_none_without_limits():
    assert recycle_reason(10_000, 50_000.0, 0, 0) is None


def test_recycle_reason_after_max_jobs():
    assert recycle_reason(99, 10.0, 100, 0) is None
    assert "100 jobs" in recycle_reason(100, 10.0, 100, 0)


def test_recycle_reason_above_max_rss():
    assert recycle_reason(1, 512.0, 0, 512) is None
    assert "513 MiB" in recycle_reason(1, 513.0, 0, 512)


def test_rss_mb_reads_this_process(tmp_path):
    assert rss_mb() > 1
    assert rss_mb(tmp_path / "missing") == 0.0
