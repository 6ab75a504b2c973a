"""Chaos: 300 jobs through `detectflow up` while worker processes and once redis-server are SIGKILLed."""

from __future__ import annotations

import os

import pytest

from tests.chaos.harness import render_figures, run_chaos

pytestmark = [pytest.mark.redis, pytest.mark.models, pytest.mark.slow]

#: Jobs of the `make test` run (`make chaos` runs 10,000); DETECTFLOW_CHAOS_JOBS overrides.
JOBS = int(os.environ.get("DETECTFLOW_CHAOS_JOBS", "300"))


@pytest.mark.timeout(900)
def test_chaos_no_job_lost_or_stored_twice_under_kills(tmp_path):
    figures = run_chaos(JOBS, tmp_path)
    print("\n" + render_figures(figures))
    assert figures.accepted == JOBS
    assert figures.worker_kills >= 1 and figures.redis_kills == 1
    assert figures.lost == 0, figures
    assert not figures.unfinished_at_bound, figures
    assert figures.stored_twice == 0, figures
    # a job may fail only by the delivery cap (killed three times while running): none expected, all counted
    assert set(figures.failure_codes) <= {"worker_crashed"}, figures.failure_codes
    assert figures.statuses["succeeded"] + figures.failure_codes["worker_crashed"] == JOBS
    assert figures.max_job_s <= figures.bound_s
