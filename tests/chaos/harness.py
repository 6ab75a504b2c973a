"""The chaos run: jobs through `detectflow up` while worker processes and once redis-server are SIGKILLed.

``run_chaos`` drives it and returns the figures; ``python -m tests.chaos.harness --jobs N`` prints
them (``make chaos`` runs 10,000 and writes them into docs/reliability.md).
"""

from __future__ import annotations

import argparse
import os
import random
import re
import signal
import statistics
import tempfile
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

import httpx
import redis

from tests.support.up import UpProcess, _cmdline, dramatiq_worker_processes

__all__ = ["ChaosFigures", "run_chaos", "render_figures", "DEFAULT_SEED"]

#: Seed of the kill schedule and victim choice.
DEFAULT_SEED = 14
#: Seconds between two worker kills: drawn uniformly in this range.
KILL_EVERY = (2.0, 5.0)
#: Shortest time the submissions are spread over (seconds): several kills land mid-run.
DEFAULT_SPREAD_S = 30.0
#: After the bound, with the faults stopped: how long jobs still unfinished get to finish (slow, or lost), seconds.
DEFAULT_DRAIN_S = 120.0
#: Worker processes `detectflow up` runs (each under its own supervised Dramatiq master).
WORKERS = 2


@dataclass
class ChaosFigures:
    """What one chaos run measured."""

    jobs: int
    accepted: int = 0
    worker_kills: int = 0
    redis_kills: int = 0
    statuses: Counter = field(default_factory=Counter)
    failure_codes: Counter = field(default_factory=Counter)
    lost: int = 0
    stored_twice: int = 0
    redelivered: int = 0
    retried_submissions: int = 0
    seconds: float = 0.0
    job_seconds: list[float] = field(default_factory=list)
    bound_s: float = 0.0
    #: Jobs not final at the bound, by the status they read then (queued, running, retrying).
    unfinished_at_bound: Counter = field(default_factory=Counter)
    #: Of those, the ones that became final once the faults stopped (slow, not lost).
    late: int = 0

    @property
    def max_job_s(self) -> float:
        return max(self.job_seconds, default=0.0)

    @property
    def p99_job_s(self) -> float:
        xs = sorted(self.job_seconds)
        return xs[min(len(xs) - 1, int(0.99 * len(xs)))] if xs else 0.0


def render_figures(f: ChaosFigures) -> str:
    """The figures as a Markdown table (printed by the test, written into docs/reliability.md)."""
    median = statistics.median(f.job_seconds) if f.job_seconds else 0.0
    codes = ", ".join(f"{c} {n}" for c, n in sorted(f.failure_codes.items())) or "none"
    rows = [
        ("jobs submitted and accepted", f"{f.accepted} of {f.jobs}"),
        ("worker processes SIGKILLed", f"{f.worker_kills} (one every {KILL_EVERY[0]:g}-{KILL_EVERY[1]:g} s)"),
        ("redis-server SIGKILLed and restarted on its AOF", str(f.redis_kills)),
        ("succeeded", str(f.statuses.get("succeeded", 0))),
        ("failed (by code)", codes),
        ("not final within the bound (by status then)", f"{sum(f.unfinished_at_bound.values())}"
         + (" (" + ", ".join(f"{k} {n}" for k, n in sorted(f.unfinished_at_bound.items())) + ")"
            if f.unfinished_at_bound else "")),
        ("of those, final once the faults stopped", str(f.late)),
        ("lost (accepted, never final)", str(f.lost)),
        ("stored twice (succeeded transitions beyond one per job)", str(f.stored_twice)),
        ("jobs run more than once (redelivered after a kill)", str(f.redelivered)),
        ("submissions retried (503 or refused while Redis was down; Idempotency-Key)", str(f.retried_submissions)),
        ("created -> final, median / p99 / max", f"{median:.1f} / {f.p99_job_s:.1f} / {f.max_job_s:.1f} s"),
        ("every job final within", f"{f.bound_s:.0f} s of the last submission"),
        ("run time", f"{f.seconds:.0f} s"),
    ]
    return "\n".join(["| measure | value |", "| --- | --- |", *[f"| {a} | {b} |" for a, b in rows]])


def _redis_pids(port: int) -> list[int]:
    """redis-server processes on ``port`` (Redis rewrites its title and environment: found by port)."""
    pids = [int(e.name) for e in Path("/proc").iterdir() if e.name.isdigit()]
    return [p for p in pids if "redis-server" in (c := _cmdline(p)) and f":{port}" in c]


class _Killer(threading.Thread):
    """SIGKILLs a random worker process every 2-5 s; once, when asked, redis-server."""

    def __init__(self, marker: str, redis_port: int, rng: random.Random) -> None:
        super().__init__(daemon=True)
        self.marker, self.redis_port, self.rng = marker, redis_port, rng
        self.stop = threading.Event()
        self.kill_redis = threading.Event()
        self.worker_kills = self.redis_kills = 0

    def run(self) -> None:
        while not self.stop.wait(self.rng.uniform(*KILL_EVERY)):
            if self.kill_redis.is_set() and not self.redis_kills:
                for pid in _redis_pids(self.redis_port):
                    os.kill(pid, signal.SIGKILL)
                    self.redis_kills += 1
                continue
            victims = dramatiq_worker_processes(self.marker)
            if victims:
                try:
                    os.kill(self.rng.choice(victims), signal.SIGKILL)
                    self.worker_kills += 1
                except ProcessLookupError:
                    pass


def _submit_all(
    client: httpx.Client, n: int, data: bytes, ids: list[str], figures: ChaosFigures, half: threading.Event, spread_s: float
):
    start = time.monotonic()
    for i in range(n):
        # paced over spread_s at least, so the faults land while work is in flight however fast the workers are
        ahead = start + spread_s * i / n - time.monotonic()
        if ahead > 0:
            time.sleep(ahead)
        while True:
            try:
                res = client.post(
                    "/v1/jobs", files={"file": ("a.png", data)}, data={"task": "face", "cache": "false"},
                    headers={"Idempotency-Key": f"chaos-{i}"},
                )  # fmt: skip
                if res.status_code in (200, 202):
                    ids.append(res.json()["id"])
                    break
            except httpx.HTTPError:
                pass
            figures.retried_submissions += 1  # Redis down (503), queue full (429) or the API restarting
            time.sleep(0.2)
        if i == n // 2:
            half.set()


def chaos_image(kind: str = "jpeg") -> bytes:
    """The photo every job sends: the astronaut (one face).

    ``jpeg``: at 160 px, about 10 KB (the default); ``png``: the 512 x 512 PNG, about 500 KB a job.
    """
    import cv2

    from tests.support.images import image_bgr

    if kind == "png":
        ok, buf = cv2.imencode(".png", image_bgr("astronaut"))
    else:
        ok, buf = cv2.imencode(".jpg", cv2.resize(image_bgr("astronaut"), (160, 160)), [cv2.IMWRITE_JPEG_QUALITY, 85])
    assert ok
    return buf.tobytes()


def _get(client: httpx.Client, job_id: str) -> dict | None:
    try:
        res = client.get(f"/v1/jobs/{job_id}")
        return res.json() if res.status_code == 200 else None
    except (httpx.HTTPError, ValueError):
        return None


def run_chaos(
    jobs: int, workdir: Path, seed: int = DEFAULT_SEED, bound_s: float | None = None, spread_s: float = DEFAULT_SPREAD_S,
    image: str = "jpeg",
) -> ChaosFigures:
    """Submit ``jobs`` face jobs through `detectflow up` under the kill loop; wait for each to be final.

    Submissions are spread over ``spread_s`` seconds at least, so several worker kills and the
    Redis kill fall while jobs are in flight.

    ``bound_s`` (default: 120 s plus 0.1 s per job) is how long after the last submission every job
    must be final; a job still unfinished then counts as lost.
    """
    figures = ChaosFigures(jobs=jobs, bound_s=bound_s or 120 + 0.1 * jobs)
    rng = random.Random(seed)
    started = time.monotonic()
    up = UpProcess(
        workdir / "state", workdir / "up.log", workers=WORKERS,
        worker_dead_after_seconds=3, api_max_queue_depth=max(1000, jobs), key_max_queued_jobs=max(1000, jobs),
        up_crash_loop_restarts=1_000_000, up_restart_backoff_seconds=0.2, up_restart_max_backoff_seconds=1,
    )  # fmt: skip
    redis_url = re.search(r"redis-server on (redis://\S+)", up.output()).group(1)
    killer = _Killer(up.marker, int(redis_url.rsplit(":", 1)[1].split("/")[0]), rng)
    try:
        with httpx.Client(base_url=up.url, timeout=10, headers=up.auth) as client:
            ids: list[str] = []
            half = threading.Event()
            killer.start()
            threading.Thread(target=lambda: half.wait() and killer.kill_redis.set(), daemon=True).start()
            _submit_all(client, jobs, chaos_image(image), ids, figures, half, spread_s)  # past half: redis-server dies once
            figures.accepted = len(set(ids))
            deadline = time.monotonic() + figures.bound_s
            pending = set(ids)
            final: dict[str, dict] = {}
            last_seen = _wait_final(client, pending, final, deadline)
            if not killer.redis_kills:  # the run ended before the redis kill's tick: wait for it
                wait_until = time.monotonic() + 10
                while not killer.redis_kills and time.monotonic() < wait_until:
                    time.sleep(0.1)
            killer.stop.set()
            killer.join(10)
            figures.unfinished_at_bound = Counter(last_seen.get(j, "unreadable") for j in pending)
            if pending:  # slow or lost? with the faults stopped, a live platform finishes what it holds
                at_bound = len(pending)
                _wait_final(client, pending, final, time.monotonic() + DEFAULT_DRAIN_S)
                figures.late = at_bound - len(pending)
            figures.lost = len(pending)
            for job in final.values():
                figures.statuses[job["status"]] += 1
                if job["status"] == "failed":
                    figures.failure_codes[job["error"]["code"]] += 1
                figures.redelivered += job["attempts"] > 1
                end = datetime.fromisoformat(job["finished_at"])
                figures.job_seconds.append((end - datetime.fromisoformat(job["created_at"])).total_seconds())
            r = redis.Redis.from_url(redis_url, socket_timeout=5)
            counted = int(r.hget("detectflow:stats:jobs", "succeeded") or 0)
            figures.stored_twice = max(0, counted - figures.statuses.get("succeeded", 0))
    finally:
        killer.stop.set()
        figures.worker_kills, figures.redis_kills = killer.worker_kills, killer.redis_kills
        up.stop()
    figures.seconds = time.monotonic() - started
    return figures


def _wait_final(client: httpx.Client, pending: set[str], final: dict[str, dict], deadline: float) -> dict[str, str]:
    """Poll ``pending`` jobs until each is final (moved to ``final``) or ``deadline``; the last status seen of each."""
    seen: dict[str, str] = {}
    while pending and time.monotonic() < deadline:
        for job_id in list(pending):
            job = _get(client, job_id)
            if job:
                seen[job_id] = job["status"]
            if job and job["status"] in ("succeeded", "failed", "cancelled"):
                final[job_id] = job
                pending.discard(job_id)
        if pending:
            time.sleep(0.5)
    return seen


def _write(doc: Path, table: str, jobs: int, seed: int) -> None:
    text = doc.read_text()
    begin, end = "<!-- BEGIN CHAOS FIGURES -->\n", "\n<!-- END CHAOS FIGURES -->"
    a, b = text.index(begin) + len(begin), text.index(end)
    stamp = (
        f"{jobs:,} jobs, measured {datetime.now().date().isoformat()} by `make chaos` (seed {seed}) on "
        f"{os.cpu_count()} cores, load average {os.getloadavg()[0]:.1f} when it ended:\n\n"
    )
    doc.write_text(text[:a] + stamp + table + text[b:])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--jobs", type=int, default=2000)
    parser.add_argument("--seed", type=int, default=DEFAULT_SEED)
    parser.add_argument("--write", type=Path, help="a docs page with the CHAOS FIGURES markers to update")
    parser.add_argument("--workdir", type=Path, help="keep state and logs here (default: a temporary directory)")
    parser.add_argument("--image", choices=["jpeg", "png"], default="jpeg",
                        help="the photo each job sends: a 10 KB JPEG, or the 500 KB 512 x 512 PNG")
    args = parser.parse_args()
    if args.workdir:
        args.workdir.mkdir(parents=True, exist_ok=True)
        figures = run_chaos(args.jobs, args.workdir, args.seed, image=args.image)
    else:
        with tempfile.TemporaryDirectory(prefix="detectflow-chaos-") as tmp:
            figures = run_chaos(args.jobs, Path(tmp), args.seed, image=args.image)
    table = render_figures(figures)
    print(table)
    ok = (figures.lost == 0 and not figures.unfinished_at_bound and figures.stored_twice == 0
          and figures.accepted == args.jobs)
    if args.write and ok:  # a failed run's figures are printed, never written as the page's
        _write(args.write, table, args.jobs, args.seed)
    raise SystemExit(0 if ok else 1)


if __name__ == "__main__":
    main()
