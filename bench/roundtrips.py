"""Redis round trips per job: every command `make up`'s processes send for one face job, by process.

One job at a time (POST, then one long-poll GET), with Redis's MONITOR on: each command a client
sends is one round trip (pipelines and MULTI blocks show each command; Lua scripts' own commands are
marked ``lua`` and counted apart, since they cost no round trip). Commands are attributed to the
process that holds the client's socket. The idle rate (heartbeats, wake-up waits, maintenance) is
measured first over the same length of time and subtracted.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import threading
import time
from collections import Counter
from pathlib import Path

import httpx
import psutil
import redis

from bench.report import replace_section
from bench.run import photo_640x480
from bench.stacks import DetectflowUp, _label

SECTION = "roundtrips"


def _script_names() -> dict[str, str]:
    """SHA1 -> name of every Lua script detectflow and Dramatiq send (as ``EVALSHA`` names them)."""
    import hashlib
    import importlib

    import dramatiq.brokers.redis as dramatiq_redis

    names = {}
    for module, attrs in {
        "detectflow.jobs.stores.redis": ("_TRANSITION", "_START", "_SUBMIT"),
        "detectflow.auth.store": ("_AUTHENTICATE",),
        "detectflow.blobs.expiry": ("_MARK", "_CLAIM"),
        "detectflow.video.storage": ("_FINISH",),
    }.items():
        mod = importlib.import_module(module)
        for attr in attrs:
            names[hashlib.sha1(getattr(mod, attr).encode()).hexdigest()] = "script " + attr.strip("_").lower()
    lua = Path(dramatiq_redis.__file__).parent / "redis" / "dispatch.lua"
    names[hashlib.sha1(lua.read_bytes()).hexdigest()] = "dramatiq"
    return names


#: Script SHA1 -> name (unnamed scripts show their SHA's start).
SCRIPT_NAMES: dict[str, str] = _script_names()
#: Jobs measured, one at a time.
DEFAULT_JOBS = 40


def _redis_port(up: DetectflowUp) -> int:
    """The port of the redis-server `detectflow up` started (its process title is ``redis-server HOST:PORT``)."""
    for child in psutil.Process(up.proc.pid).children():
        if "redis-server" in child.name():
            for conn in child.net_connections(kind="tcp"):
                if conn.status == psutil.CONN_LISTEN:
                    return conn.laddr.port
    raise RuntimeError("no redis-server under detectflow up")


def _owners(ports: set[int]) -> dict[int, str]:
    """What runs the process holding each local TCP ``port`` (``api``, ``worker face``, ...), from one socket scan."""
    owners: dict[int, str] = {}
    for conn in psutil.net_connections(kind="tcp"):
        if conn.laddr and conn.laddr.port in ports and conn.pid and conn.laddr.port not in owners:
            label = _label(conn.pid)
            owners[conn.laddr.port] = label if label != "python" else "detectflow up"
    return owners


class _Monitor(threading.Thread):
    """Collects (client port, command name, from a script) of every command Redis runs."""

    def __init__(self, port: int) -> None:
        super().__init__(daemon=True)
        self.client = redis.Redis(port=port)
        self.seen: list[tuple[int, str, bool]] = []
        self.recording = False
        self.ready = threading.Event()

    def run(self) -> None:
        try:
            self._listen()
        except redis.ConnectionError:  # redis-server stopped with the platform
            pass

    def _listen(self) -> None:
        with self.client.monitor() as m:
            self.ready.set()
            for event in m.listen():
                if self.recording:
                    words = [w.strip("'\"") for w in event["command"].split(" ", 5)]
                    name = words[0].upper()
                    if name == "EVALSHA" and len(words) > 1:  # which script: named by its source
                        script = SCRIPT_NAMES.get(words[1], words[1][:8])
                        # Dramatiq's one dispatch script: its command follows the one key
                        name = f"dramatiq {words[4]}" if script == "dramatiq" and len(words) > 4 else script
                    self.seen.append((int(event.get("client_port") or 0), name, event.get("client_type") == "lua"))


def measure(jobs: int) -> dict:
    """Round trips and script commands per job, by process and command, minus the idle rate."""
    jpeg = photo_640x480()
    with tempfile.TemporaryDirectory() as tmp:
        up = DetectflowUp(Path(tmp) / "detectflow").start()
        try:
            url = f"http://127.0.0.1:{up.port}"
            monitor = _Monitor(_redis_port(up))
            monitor.start()
            monitor.ready.wait(10)
            with httpx.Client(base_url=url, headers=up.headers, timeout=30) as client:
                for _ in range(5):  # warm: models, connections, scripts loaded
                    job = client.post("/v1/jobs", files={"file": ("p.jpg", jpeg)}, data={"task": "face"}).json()
                    client.get(f"/v1/jobs/{job['id']}?wait=10")
                time.sleep(1.0)
                t0 = time.perf_counter()
                monitor.recording = True
                for _ in range(jobs):
                    job = client.post("/v1/jobs", files={"file": ("p.jpg", jpeg)}, data={"task": "face"}).json()
                    seen = client.get(f"/v1/jobs/{job['id']}?wait=10").json()
                    assert seen["status"] == "succeeded", seen
                time.sleep(0.3)  # the last job's ack and bookkeeping
                busy_s = time.perf_counter() - t0
                monitor.recording = False
                busy = list(monitor.seen)
                monitor.seen.clear()
                monitor.recording = True  # then as long idle: what the platform sends with no job at all
                time.sleep(busy_s)
                monitor.recording = False
                idle = list(monitor.seen)
            owners = _owners({p for p, _, _ in busy + idle})
        finally:
            up.stop()

    def tally(events) -> tuple[Counter, Counter]:
        trips, inner = Counter(), Counter()
        for port, name, lua in events:
            (inner if lua else trips)[(owners.get(port, "?") if not lua else "lua", name)] += 1
        return trips, inner

    busy_trips, busy_inner = tally(busy)
    idle_trips, idle_inner = tally(idle)
    per_job = {k: (busy_trips[k] - idle_trips.get(k, 0)) / jobs for k in busy_trips}
    inner = {k[1]: (busy_inner[k] - idle_inner.get(k, 0)) / jobs for k in busy_inner}
    return {"jobs": jobs, "seconds": busy_s, "per_job": per_job, "inner": inner,
            "idle_per_s": {k: v / busy_s for k, v in idle_trips.items()}}  # fmt: skip


def render(res: dict) -> str:
    by_process: dict[str, Counter] = {}
    for (proc, name), n in res["per_job"].items():
        if n >= 0.05:
            by_process.setdefault(proc, Counter())[name] += n
    lines = [
        "## Redis round trips per job",
        "",
        f"Measured by `python -m bench.roundtrips` (part of `make bench`): {res['jobs']} face jobs one at a time "
        "through `detectflow up` with its defaults (POST `/v1/jobs`, then one `GET ?wait=10`), Redis's MONITOR "
        "on. Each command a client sends is a round trip, except in a pipeline, whose commands share one "
        "(the worker's job statistics and the input blob's expiry are written by its final transition's "
        "script). The idle rate over the same length of time is subtracted (a fetch or BLPOP count can "
        f"then show a fraction); load average {os.getloadavg()[0]:.1f}.",
        "",
        "| process | commands sent per job | by command (`script x`: one of detectflow's Lua scripts; `dramatiq x`: Dramatiq's) |",
        "| --- | --- | --- |",
    ]
    total = 0.0
    for proc, cmds in sorted(by_process.items(), key=lambda kv: -sum(kv[1].values())):
        n = sum(cmds.values())
        total += n
        detail = ", ".join(f"{c} {v:.1f}" for c, v in cmds.most_common())
        lines.append(f"| {proc} | {n:.1f} | {detail} |")
    lines.append(f"| **all** | **{total:.1f}** | |")
    inner = {k: v for k, v in res["inner"].items() if v >= 0.05}
    idle = sum(res["idle_per_s"].values())
    lines += [
        "",
        f"Inside Lua scripts (no round trip of their own) Redis ran {sum(inner.values()):.1f} commands per job "
        f"({', '.join(f'{c} {v:.1f}' for c, v in sorted(inner.items(), key=lambda kv: -kv[1]))}). "
        f"Idle, the platform sends {idle:.1f} commands per second in all (heartbeats, the workers' blocking "
        "wake-up waits, Dramatiq's maintenance).",
    ]
    return "\n".join(lines) + "\n"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--jobs", type=int, default=DEFAULT_JOBS)
    ap.add_argument("--write", type=Path, help="replace this report's section of the given markdown file")
    args = ap.parse_args()
    report = render(measure(args.jobs))
    print(report)
    if args.write:
        replace_section(args.write, SECTION, report)


if __name__ == "__main__":
    main()
