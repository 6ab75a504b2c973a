"""The cost of Redis's `appendfsync always` against `everysec` (and `no`), side by side in one run.

Each policy gets its own redis-server (append-only file on the disk of ``--dir``) and its own API;
rounds alternate between them. Measured: raw SET latency from redis-py (one client), and
``POST /v1/jobs`` from one keep-alive client and from 16 at once (no worker: enqueue cost only).

Run with `python -m bench.appendfsync` (prints a markdown table).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
import numpy as np
import redis

from bench.client import Conn, multipart_post
from bench.run import photo_640x480
from detectflow.cli.up import RedisServer, free_port
from detectflow.config import DEFAULT_CACHE_DIR

#: Policies compared, in the order of each round.
DEFAULT_POLICIES = ("always", "everysec", "no")


class Stack:
    """redis-server with one appendfsync policy, and an API in front of it."""

    def __init__(self, workdir: Path, policy: str) -> None:
        self.policy = policy
        self.redis = RedisServer(workdir / policy, appendonly=True, appendfsync=policy).start()
        self.port = free_port()
        env = {k: v for k, v in os.environ.items() if not k.startswith("DETECTFLOW_")}
        env.update(
            DETECTFLOW_REDIS_URL=self.redis.url,
            DETECTFLOW_LOG_LEVEL="WARNING",
            DETECTFLOW_API_MAX_QUEUE_DEPTH="1000000",
        )
        self.log = (workdir / f"api-{policy}.log").open("ab")
        self.api = subprocess.Popen(
            [sys.executable, "-m", "detectflow.cli.main", "api", "--port", str(self.port)],
            env=env,
            stdout=self.log,
            stderr=subprocess.STDOUT,
        )
        deadline = time.monotonic() + 30
        while True:
            try:
                if httpx.get(f"http://127.0.0.1:{self.port}/healthz", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                raise TimeoutError(f"API for {policy} did not start")
            time.sleep(0.05)

    def close(self) -> None:
        self.api.terminate()
        self.api.wait(30)
        self.redis.stop()
        self.log.close()


def redis_set_latency(url: str, n: int) -> list[float]:
    """Seconds per SET of 100 bytes, one client, ``n`` times in a row."""
    client = redis.Redis.from_url(url)
    value = b"x" * 100
    out = []
    for i in range(n):
        t0 = time.perf_counter()
        client.set(f"bench:{i}", value)
        out.append(time.perf_counter() - t0)
    client.delete(*[f"bench:{i}" for i in range(n)])
    return out


async def post_jobs(port: int, jpeg: bytes, jobs: int, clients: int) -> tuple[list[float], float]:
    """POST ``jobs`` over ``clients`` keep-alive connections: (latency of each, s; jobs/s)."""
    request = multipart_post("/v1/jobs", f"127.0.0.1:{port}", {"task": "face"}, "p.jpg", jpeg)
    conns = [await Conn("127.0.0.1", port).open() for _ in range(clients)]
    remaining = iter(range(jobs))
    latencies: list[float] = []

    async def client(conn: Conn) -> None:
        for _ in remaining:
            t0 = time.perf_counter()
            status, body = await conn.send(request)
            latencies.append(time.perf_counter() - t0)
            assert status == 202, body[:300]

    start = time.perf_counter()
    await asyncio.gather(*(client(c) for c in conns))
    elapsed = time.perf_counter() - start
    for c in conns:
        await c.close()
    return latencies, jobs / elapsed


def _ms(values: list[float], q: float) -> float:
    return float(np.percentile(np.asarray(values), q)) * 1000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dir", type=Path, default=DEFAULT_CACHE_DIR, help="disk of the append-only files")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--sets", type=int, default=2000, help="raw SETs per round")
    parser.add_argument("--jobs", type=int, default=300, help="POSTs per round and client setting")
    args = parser.parse_args()
    args.dir.mkdir(parents=True, exist_ok=True)
    workdir = Path(tempfile.mkdtemp(prefix="appendfsync-", dir=args.dir))
    jpeg = photo_640x480()
    stacks = [Stack(workdir, policy) for policy in DEFAULT_POLICIES]
    res: dict[str, dict[str, list[float]]] = {s.policy: {} for s in stacks}
    try:
        asyncio.run(post_jobs(stacks[0].port, jpeg, 20, 1))  # warm-up
        for _ in range(args.rounds):
            for s in stacks:  # alternate, so drift in the machine's load hits every policy alike
                r = res[s.policy]
                r.setdefault("set", []).extend(redis_set_latency(s.redis.url, args.sets))
                lat1, rate1 = asyncio.run(post_jobs(s.port, jpeg, args.jobs, 1))
                r.setdefault("post1", []).extend(lat1)
                r.setdefault("rate1", []).append(rate1)
                lat16, rate16 = asyncio.run(post_jobs(s.port, jpeg, args.jobs, 16))
                r.setdefault("post16", []).extend(lat16)
                r.setdefault("rate16", []).append(rate16)
    finally:
        for s in stacks:
            s.close()
        fs = subprocess.run(["df", "-T", str(workdir)], capture_output=True, text=True).stdout.splitlines()[-1:]
        shutil.rmtree(workdir, ignore_errors=True)
    print(f"append-only files on: {' '.join(fs[0].split()[:2]) if fs else workdir}; {os.cpu_count()} cores; "
          f"{args.rounds} rounds of {args.sets} SETs and {args.jobs} POSTs per client setting")  # fmt: skip
    print("| appendfsync | SET p50 / p99 (ms) | POST 1 client p50 / p99 (ms) | POST 1 client jobs/s "
          "| POST 16 clients p50 / p99 (ms) | POST 16 clients jobs/s |")  # fmt: skip
    print("| --- | --- | --- | --- | --- | --- |")
    for policy, r in res.items():
        print(
            f"| {policy} | {_ms(r['set'], 50):.3f} / {_ms(r['set'], 99):.3f} "
            f"| {_ms(r['post1'], 50):.1f} / {_ms(r['post1'], 99):.1f} | {statistics.median(r['rate1']):.0f} "
            f"| {_ms(r['post16'], 50):.1f} / {_ms(r['post16'], 99):.1f} | {statistics.median(r['rate16']):.0f} |"
        )


if __name__ == "__main__":
    main()
