"""Unit tests of the worker pod's exec probe."""

from __future__ import annotations

import os
import time

from detectflow.worker.probe import main, verdict


def test_verdict_not_ready_before_any_process_booted():
    assert verdict([], 30)[0] is False


def test_verdict_alive_while_every_process_beats():
    assert verdict([0.5, 2.0], 30) == (True, "2 worker processes beating")


def test_verdict_one_wedged_process_fails_the_pod():
    ok, why = verdict([0.5, 45.0], 30)
    assert not ok and "1 of 2" in why


def test_probe_main_reads_the_files(tmp_path):
    fresh, stale = tmp_path / "worker-1.beat", tmp_path / "worker-2.beat"
    fresh.touch()
    assert main([str(tmp_path), "30"]) == 0
    stale.touch()
    old = time.time() - 60
    os.utime(stale, (old, old))
    assert main([str(tmp_path), "30"]) == 1
