"""Two revisions of detectflow side by side: `detectflow up` from each source tree, the same client, alternating.

Run: ``python -m bench.compare REV [--rounds 4] [--jobs 400]``. ``REV`` (any git revision) is checked out in
a temporary worktree and run as "old"; this checkout's own tree (uncommitted changes included) is "new".
Both stacks are started with their own defaults (only ``PYTHONPATH`` differs), warmed and paused; each round
then resumes one stack at a time and measures it with bench.run's polling client (``measure_stack``: 16 users,
one job each, a poll every 100 ms), the order alternating round by round. Printed: jobs/s and CPU per job by
process for each, and the per-round ratios, which are what to read on a noisy machine.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from bench.run import measure_stack, photo_640x480
from bench.stacks import DetectflowUp

ROOT = Path(__file__).resolve().parent.parent
#: Rounds; each measures both stacks once.
DEFAULT_ROUNDS = 4
#: Jobs per measurement.
DEFAULT_JOBS = 400
#: Polling users per measurement (as bench.run).
DEFAULT_USERS = 16


def own_cpu(m: dict) -> float:
    """CPU ms per job of a measurement's stack, the load generator excluded."""
    return sum(v for k, v in m["cpu_ms"].items() if k != "client")


def round_ratios(old: list[dict], new: list[dict]) -> dict[str, list[float]]:
    """Per round: new over old by jobs/s, and old over new by CPU per job (above 1: new is better in both)."""
    return {
        "jobs_per_s": [n["jobs_per_s"] / o["jobs_per_s"] for o, n in zip(old, new, strict=True)],
        "cpu": [own_cpu(o) / own_cpu(n) for o, n in zip(old, new, strict=True)],
    }


@contextmanager
def worktree(rev: str) -> Iterator[Path]:
    """``rev`` checked out (detached) in a temporary git worktree, removed afterwards."""
    path = Path(tempfile.mkdtemp(prefix="detectflow-compare-")) / "tree"
    subprocess.run(["git", "-C", str(ROOT), "worktree", "add", "--detach", "-q", str(path), rev], check=True)
    try:
        yield path
    finally:
        subprocess.run(["git", "-C", str(ROOT), "worktree", "remove", "--force", str(path)], check=False)


def compare(old_src: Path, new_src: Path, rounds: int, jobs: int, users: int = DEFAULT_USERS) -> dict:
    """Measure ``detectflow up`` from ``old_src`` and ``new_src`` (each a tree's ``src``), alternating."""
    args = argparse.Namespace(users=users, jobs=jobs)
    jpeg = photo_640x480()
    stacks: dict[str, DetectflowUp] = {}
    try:
        for name, src in (("old", old_src), ("new", new_src)):
            stack = DetectflowUp(Path(tempfile.mkdtemp()), env={"PYTHONPATH": str(src)}, label=name).start()
            stack.pause()
            stacks[name] = stack
        runs: dict[str, list[dict]] = {name: [] for name in stacks}
        for r in range(rounds):
            for name in (["old", "new"] if r % 2 == 0 else ["new", "old"]):
                stacks[name].resume()
                runs[name].append(measure_stack(stacks[name], jpeg, args))
                stacks[name].pause()
        return {"runs": runs, "ratios": round_ratios(runs["old"], runs["new"])}
    finally:
        for stack in stacks.values():
            stack.stop()


def render(res: dict) -> str:
    lines = []
    for name, runs in res["runs"].items():
        procs = sorted({k for m in runs for k in m["cpu_ms"]})
        by_proc = ", ".join(f"{k} {statistics.median(m['cpu_ms'].get(k, 0.0) for m in runs):.2f}" for k in procs)
        lines.append(
            f"{name}: jobs/s {statistics.median(m['jobs_per_s'] for m in runs):.1f}, CPU ms per job "
            f"{statistics.median(own_cpu(m) for m in runs):.2f} ({by_proc}; medians of {len(runs)} rounds)"
        )
    for what, label in (("jobs_per_s", "new/old by jobs/s"), ("cpu", "old/new by CPU per job")):
        lines.append(f"{label}, per round: " + ", ".join(f"{x:.3f}" for x in res["ratios"][what]))
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("rev", help="the git revision to run as 'old' (this checkout's tree is 'new')")
    ap.add_argument("--rounds", type=int, default=DEFAULT_ROUNDS)
    ap.add_argument("--jobs", type=int, default=DEFAULT_JOBS)
    args = ap.parse_args()
    with worktree(args.rev) as tree:
        print(render(compare(tree / "src", ROOT / "src", args.rounds, args.jobs)))


if __name__ == "__main__":
    main()
