"""API CPU per request, by request: detectflow's API and the Celery stack's, side by side, over HTTP.

Run: ``python -m bench.apicpu [--write docs/performance.md]`` (``make bench`` runs it). Each stack runs whole
(``detectflow up`` with its defaults; the Celery stack with its worker), so a poll reads what it reads under
load; only the API process's CPU (user + system, from /proc) is counted, over ``--requests`` requests of one
kind sent one after the other on one keep-alive connection. The stacks alternate round by round.
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from pathlib import Path

import httpx

from bench.report import replace_section
from bench.run import photo_640x480
from bench.stacks import CeleryStack, DetectflowUp, redis_server_binary

SECTION = "apicpu"
#: Requests of each kind per round.
DEFAULT_REQUESTS = 500
#: Rounds (each measures every stack and kind once).
DEFAULT_ROUNDS = 3
#: What is measured, in order: label -> (method, path or None for the job's URL).
KINDS = ("GET /healthz", "GET /v1/jobs/{id} (finished)", "POST /v1/jobs")


def _api_cpu(stack) -> float:
    return stack.cpu()["api"]


def measure_stack(stack, client: httpx.Client, jpeg: bytes, requests: int) -> dict[str, float]:
    """API CPU ms per request of each kind in KINDS."""
    job = client.post("/v1/jobs", files={"file": ("p.jpg", jpeg)}, data={"task": "face"}).json()["id"]
    deadline = time.monotonic() + 60
    while client.get(f"/v1/jobs/{job}").json()["status"] != "succeeded" and time.monotonic() < deadline:
        time.sleep(0.05)
    calls = {
        "GET /healthz": lambda: client.get("/healthz"),
        "GET /v1/jobs/{id} (finished)": lambda: client.get(f"/v1/jobs/{job}"),
        "POST /v1/jobs": lambda: client.post("/v1/jobs", files={"file": ("p.jpg", jpeg)}, data={"task": "face"}),
    }
    out = {}
    for kind in KINDS:
        before = _api_cpu(stack)
        for _ in range(requests):
            calls[kind]()
        out[kind] = (_api_cpu(stack) - before) / requests * 1000
    return out


def measure(requests: int, rounds: int) -> dict:
    res: dict = {"cpu": {}, "load": []}
    jpeg = photo_640x480()
    with tempfile.TemporaryDirectory() as tmp:
        stacks = [
            DetectflowUp(Path(tmp) / "detectflow"),
            CeleryStack(Path(tmp) / "celery", redis_server_binary()),
        ]
        started = []
        try:
            for s in stacks:
                started.append(s.start())
                s.pause()
            for r in range(rounds):
                res["load"].append(os.getloadavg()[0])
                for s in stacks if r % 2 == 0 else stacks[::-1]:
                    s.resume()
                    with httpx.Client(base_url=f"http://127.0.0.1:{s.port}", headers=getattr(s, "headers", None) or {},
                                      timeout=30) as client:  # fmt: skip
                        got = measure_stack(s, client, jpeg, requests)
                    s.pause()
                    for kind, ms in got.items():
                        res["cpu"].setdefault(s.name, {}).setdefault(kind, []).append(ms)
                print(f"round {r + 1}: " + "; ".join(
                    f"{n} " + ", ".join(f"{k} {v[-1]:.2f}" for k, v in d.items()) for n, d in res["cpu"].items()
                ), flush=True)
        finally:
            for s in started:
                s.stop()
    return res


def render(res: dict, requests: int, rounds: int) -> str:
    names = list(res["cpu"])
    lines = [
        "## API CPU per request",
        "",
        f"Measured by `python -m bench.apicpu` (part of `make bench`): CPU ms of the API process per request, "
        f"{requests} requests of each kind one after the other on one keep-alive connection, median of {rounds} "
        f"rounds (min-max), the stacks alternating; load average {min(res['load']):.1f}-{max(res['load']):.1f}. "
        "detectflow is `detectflow up` with its defaults (an API key on every request, the job's record and "
        "its pool's heartbeats read by a poll, the upload checked and stored in the blob store); the Celery "
        "stack's API checks nothing, stores the image in Redis and reads Celery's result.",
        "",
        "| request | " + " | ".join(names) + " | ratio |",
        "| --- | " + " | ".join("---" for _ in names) + " | --- |",
    ]
    for kind in KINDS:
        cells = []
        for n in names:
            v = res["cpu"][n][kind]
            cells.append(f"{statistics.median(v):.2f} ({min(v):.2f}-{max(v):.2f})")
        ratio = statistics.median(res["cpu"][names[0]][kind]) / statistics.median(res["cpu"][names[1]][kind])
        lines.append(f"| {kind} | " + " | ".join(cells) + f" | {ratio:.2f}x |")
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--requests", type=int, default=DEFAULT_REQUESTS)
    ap.add_argument("--rounds", type=int, default=DEFAULT_ROUNDS)
    ap.add_argument("--write", type=Path, help="replace this report's section of the given markdown file")
    args = ap.parse_args()
    report = render(measure(args.requests, args.rounds), args.requests, args.rounds)
    print(report)
    if args.write:
        replace_section(args.write, SECTION, report)


if __name__ == "__main__":
    main()
