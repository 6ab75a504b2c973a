"""A worker pod's exec probes: `python -m detectflow.worker.probe DIR MAX_AGE` reads the processes' heartbeat files.

Kept to the standard library: a probe runs every few seconds and must not load the worker's imports.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

__all__ = ["verdict", "main"]


def verdict(ages: list[float], max_age_s: float) -> tuple[bool, str]:
    """Whether the worker is alive and ready, given the age (seconds) of each process's heartbeat.

    No file yet (models still loading) fails, as does any file older than ``max_age_s``: one wedged
    process is enough to restart the pod.
    """
    if not ages:
        return False, "no worker process has booted yet"
    stale = [a for a in ages if a > max_age_s]
    if stale:
        return False, f"{len(stale)} of {len(ages)} worker processes silent for {max(stale):.0f} s"
    return True, f"{len(ages)} worker processes beating"


def main(argv: list[str]) -> int:
    """Exit 0 when every heartbeat file in ``argv[0]`` is younger than ``argv[1]`` seconds, else 1."""
    directory, max_age = Path(argv[0]), float(argv[1])
    now = time.time()
    ages = []
    for path in directory.glob("worker-*.beat"):
        try:
            ages.append(now - path.stat().st_mtime)
        except FileNotFoundError:  # its process just stopped
            continue
    ok, why = verdict(ages, max_age)
    print(why)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
