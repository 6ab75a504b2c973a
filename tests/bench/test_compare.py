"""bench.compare: two revisions of detectflow side by side, on the real stacks."""

from __future__ import annotations

import pytest

from bench.compare import ROOT, compare, render, round_ratios, worktree


def _run(jobs_per_s: float, **cpu: float) -> dict:
    return {"jobs_per_s": jobs_per_s, "cpu_ms": cpu}


def test_compare_ratios_favour_new_above_one_in_both_forms():
    old = [_run(50.0, api=4.0, client=1.0), _run(60.0, api=6.0, client=9.0)]
    new = [_run(60.0, api=2.0, client=1.0), _run(48.0, api=8.0, client=0.0)]
    ratios = round_ratios(old, new)
    # the load generator's CPU is not the stack's
    assert ratios == {"jobs_per_s": [1.2, 0.8], "cpu": [2.0, 0.75]}


@pytest.mark.redis
@pytest.mark.models
@pytest.mark.slow
def test_compare_runs_a_revision_beside_this_tree():
    with worktree("HEAD") as tree:
        assert (tree / "src" / "detectflow").is_dir()
        res = compare(tree / "src", ROOT / "src", rounds=1, jobs=16, users=4)
    assert set(res["runs"]) == {"old", "new"}
    for runs in res["runs"].values():
        assert runs[0]["done"] == 16 and runs[0]["failed"] == 0 and runs[0]["cpu_ms"]["api"] > 0
    assert all(x > 0 for x in res["ratios"]["jobs_per_s"] + res["ratios"]["cpu"])
    assert "per round" in render(res)
    assert not tree.exists()  # the worktree is removed
