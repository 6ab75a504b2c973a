"""Connections: 1,000 long polls against a Redis with ``maxclients 300``, on a real API process and real workers.

Run with ``-s`` to see the figures (Redis clients during the polls, submit latency).
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import select
import signal
import socket
import statistics
import sys
import time
from pathlib import Path

import httpx
import pytest
import redis

from detectflow.cli.up import RedisServer
from detectflow.keys import KeyLayout
from tests.support.images import image_bytes
from tests.support.processes import ROOT, cli_env, start_api, start_worker

pytestmark = pytest.mark.redis

#: Concurrent ``?wait=30`` polls, spread over this many queued jobs (100 readers each).
POLLS, POLLED_JOBS = 1000, 10
#: Jobs submitted (and run by the face worker) while the polls are open.
SUBMITS = 20
MAXCLIENTS = 300
PREFIX = "storm"
#: These tests are about connections, not keys: API keys off (loopback only; ignored where there are none).
NO_AUTH = {"auth": "disabled"}


def _live(client: redis.Redis, task: str) -> bool:
    return client.hlen(KeyLayout(PREFIX).workers(task)) > 0


def _pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q / 100 * len(ordered)))]


async def _storm(url: str, admin: redis.Redis, object_worker_pgid: int) -> dict:
    """Open the polls on queued object jobs, submit face jobs meanwhile, then let the object worker finish them."""
    image, small = image_bytes("astronaut"), image_bytes("coffee")
    no_keepalive = httpx.Limits(max_keepalive_connections=0)
    async with httpx.AsyncClient(base_url=url, timeout=30, limits=no_keepalive) as api:
        ids = []
        for _ in range(POLLED_JOBS):
            resp = await api.post("/v1/jobs", files={"file": ("c.png", small)}, data={"task": "object"})
            assert resp.status_code == 202, resp.text
            ids.append(resp.json()["id"])

        clients: list[int] = []
        sampling = True

        async def sample() -> None:
            while sampling:
                clients.append(int((await asyncio.to_thread(admin.info, "clients"))["connected_clients"]))
                await asyncio.sleep(0.1)

        baseline = int(admin.info("clients")["connected_clients"])
        rejected = int(admin.info("stats")["rejected_connections"])
        # the polls come from their own process, so this one's submits are not queued behind them
        generator = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "tests.support.longpolls", url, str(POLLS), "30", *ids,
            stdout=asyncio.subprocess.PIPE, cwd=ROOT,
        )  # fmt: skip
        t_start = time.time()
        assert (await asyncio.wait_for(generator.stdout.readline(), 60)).strip() == b"ready"
        t_ready = time.time()
        sampler = asyncio.create_task(sample())
        await asyncio.sleep(2)  # the API reads the last requests

        # submits and a real worker keep working while the polls wait
        latencies, codes, submitted = [], [], []
        for _ in range(SUBMITS):
            t0 = time.monotonic()
            resp = await api.post("/v1/jobs", files={"file": ("a.png", image)}, data={"task": "face"})
            latencies.append(time.monotonic() - t0)
            codes.append(resp.status_code)
            if resp.status_code == 202:
                submitted.append(resp.json()["id"])
        faces = await asyncio.gather(*(api.get(f"/v1/jobs/{i}", params={"wait": 30}) for i in submitted))
        finished = [r.json().get("status") if r.status_code == 200 else r.status_code for r in faces]
        during = list(clients)

        # the object worker wakes up and ends the polled jobs: every waiter answers
        t_resume = time.time()
        os.killpg(object_worker_pgid, signal.SIGCONT)
        results = json.loads(await asyncio.wait_for(generator.stdout.readline(), 60))
        await generator.wait()
        sampling = False
        await sampler
    return {
        "redis_rejected_connections": int(admin.info("stats")["rejected_connections"]) - rejected,
        "redis_clients_baseline": baseline,
        "redis_clients_max_during_polls": max(during),
        "redis_clients_median_during_polls": statistics.median(during),
        "polls_written_s": round(t_ready - t_start, 1),
        "polls_answered_before_jobs_ended": sum(1 for r in results if r[2] < t_resume),
        "submit_codes": sorted(set(codes)),
        "submit_latency_p50_ms": round(1000 * statistics.median(latencies), 1),
        "submit_latency_max_ms": round(1000 * max(latencies), 1),
        "face_jobs_finished": finished.count("succeeded"),
        "poll_codes": {str(c): sum(1 for r in results if r[0] == c) for c in sorted({r[0] for r in results})},
        "polls_succeeded": sum(1 for r in results if r[1] == "succeeded"),
        "polls_last_answer_after_resume_s": round(max(r[2] for r in results) - t_resume, 1),
        "polls_longest_s": round(max(r[2] for r in results) - t_start, 1),
    }


def test_connections_1000_long_polls_leave_submits_and_workers_working(tmp_path: Path):
    with RedisServer(tmp_path / "redis", appendonly=False) as server:
        admin = redis.Redis.from_url(server.url, socket_timeout=5)
        admin.config_set("maxclients", MAXCLIENTS)
        env = cli_env(redis_url=server.url, redis_prefix=PREFIX, worker_dead_after_seconds=120, **NO_AUTH)
        face = start_worker(env, tmp_path / "face.log", "face", wait_ready=lambda: _live(admin, "face"))
        obj = start_worker(env, tmp_path / "object.log", "object", wait_ready=lambda: _live(admin, "object"))
        api, url = start_api(env, tmp_path / "api.log")
        try:
            os.killpg(obj.pid, signal.SIGSTOP)  # the polled jobs stay queued until it resumes
            figures = asyncio.run(_storm(url, admin, obj.pid))
            print("\nconnections:", json.dumps(figures))
        finally:
            os.killpg(obj.pid, signal.SIGCONT)
            for proc in (api, face, obj):
                proc.stop()
    # Redis never comes near its client limit
    assert figures["redis_clients_max_during_polls"] < 100 and figures["redis_rejected_connections"] == 0, figures
    # submits answered 202 while the polls were open, and the face worker ran them
    assert figures["submit_codes"] == [202] and figures["face_jobs_finished"] == SUBMITS, figures
    # no poll answered before its job ended; every one answered with the job succeeded, before its 30 s
    assert figures["polls_answered_before_jobs_ended"] == 0, figures
    assert figures["poll_codes"] == {"200": POLLS} and figures["polls_succeeded"] == POLLS, figures
    assert figures["polls_longest_s"] < 30, figures


def _api_with(tmp_path: Path, redis_url: str, **settings):
    return start_api(cli_env(redis_url=redis_url, redis_prefix="timeouts", **NO_AUTH, **settings), tmp_path / "api.log")


def _trickle(sock: socket.socket, data: bytes) -> bool:
    """Send ``data``; False once the server has answered or closed (sending more could reset the answer away)."""
    if select.select([sock], [], [], 0)[0]:
        return False
    try:
        sock.sendall(data)
    except (BrokenPipeError, ConnectionResetError):
        return False
    return True


def _read_all(sock: socket.socket, deadline: float) -> bytes:
    """What the server sends until it closes the connection or ``deadline`` passes."""
    data = b""
    while (left := deadline - time.monotonic()) > 0:
        sock.settimeout(left)
        try:
            chunk = sock.recv(65536)
        except TimeoutError:
            break
        if not chunk:
            break
        data += chunk
    return data


def test_connections_a_trickled_header_is_cut_after_the_header_timeout(tmp_path: Path, redis_server):
    api, url = _api_with(tmp_path, redis_server.url, api_header_timeout_seconds=1, api_keepalive_seconds=30)
    try:
        port = int(url.rsplit(":", 1)[1])
        with socket.create_connection(("127.0.0.1", port)) as sock:
            t0 = time.monotonic()
            sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")
            for _ in range(3):  # a byte now and then: keeps uvicorn's keep-alive timer disarmed
                time.sleep(0.3)
                sock.sendall(b"X")
            assert _read_all(sock, t0 + 5) == b""  # closed without an answer
            assert time.monotonic() - t0 < 3
        # a request whose headers came in time may wait longer than the header timeout (long poll)
        t0 = time.monotonic()
        resp = httpx.get(f"{url}/v1/jobs/nope", params={"wait": 2}, timeout=10)
        assert resp.status_code == 404
    finally:
        api.stop()


def test_connections_a_trickled_body_gets_408_after_the_body_timeout(tmp_path: Path, redis_server):
    api, url = _api_with(tmp_path, redis_server.url, api_body_timeout_seconds=1)
    try:
        port = int(url.rsplit(":", 1)[1])
        with socket.create_connection(("127.0.0.1", port)) as sock:
            t0 = time.monotonic()
            sock.sendall(
                b"POST /v1/jobs HTTP/1.1\r\nHost: x\r\nContent-Type: multipart/form-data; boundary=b\r\n"
                b"Content-Length: 100000\r\n\r\n--b\r\n"
                b'Content-Disposition: form-data; name="file"; filename="a.png"\r\n\r\n'
            )
            for _ in range(6):
                time.sleep(0.3)
                if not _trickle(sock, b"x"):
                    break
            reply = _read_all(sock, t0 + 3.5)
        assert reply.startswith(b"HTTP/1.1 408"), reply[:200]
        assert json.loads(reply.split(b"\r\n\r\n", 1)[1])["error"]["code"] == "request_timeout"
        assert time.monotonic() - t0 < 4
    finally:
        api.stop()


def test_connections_oversized_headers_are_refused(tmp_path: Path, redis_server):
    api, url = _api_with(tmp_path, redis_server.url, api_max_header_bytes=4096)
    try:
        port = int(url.rsplit(":", 1)[1])
        with socket.create_connection(("127.0.0.1", port)) as sock:
            sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")
            for i in range(8):  # 8 KiB of headers, arriving in pieces: never buffered past 4 KiB
                if not _trickle(sock, f"X-Big-{i}: {'y' * 1024}\r\n".encode()):
                    break
                time.sleep(0.05)
            reply = _read_all(sock, time.monotonic() + 3)
        assert reply.startswith(b"HTTP/1.1 400"), reply[:200]
        assert httpx.get(f"{url}/healthz", headers={"X-Small": "y" * 1024}, timeout=10).status_code == 200
        # one send of 8 KiB headers whole is refused too
        with socket.create_connection(("127.0.0.1", port)) as sock:
            sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Big: " + b"y" * 8192 + b"\r\n\r\n")
            assert _read_all(sock, time.monotonic() + 3).startswith(b"HTTP/1.1 400")
    finally:
        api.stop()


def test_connections_the_header_cap_counts_neither_bodies_nor_earlier_requests(tmp_path: Path, redis_server):
    # Given an API whose cap on a request's line and headers is 4 KiB
    api, url = _api_with(tmp_path, redis_server.url, api_max_header_bytes=4096)
    try:
        port = int(url.rsplit(":", 1)[1])
        with socket.create_connection(("127.0.0.1", port)) as sock:
            # When one connection sends a request with a 64 KiB body (headers and body in one write), then
            # three pipelined requests of 3 KiB headers each (9 KiB in all, in one write)
            body = b"x" * 65536
            sock.sendall(b"POST /healthz HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n" % len(body) + body)
            reply = b""
            deadline = time.monotonic() + 5
            while reply.count(b"HTTP/1.1 ") < 1 and time.monotonic() < deadline:
                reply += sock.recv(65536)
            one = b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Pad: " + b"y" * 3000 + b"\r\n\r\n"
            sock.sendall(one * 3)
            while reply.count(b"HTTP/1.1 ") < 4 and time.monotonic() < deadline:
                reply += sock.recv(65536)
        # Then every request is answered by the app (405: /healthz takes GET only), none refused by the cap
        statuses = re.findall(rb"HTTP/1\.1 (\d{3}) ", reply)
        assert statuses == [b"405", b"200", b"200", b"200"], reply[:400]
    finally:
        api.stop()


def test_connections_past_the_concurrency_limit_the_api_answers_503(tmp_path: Path, redis_server):
    api, url = _api_with(tmp_path, redis_server.url, api_limit_concurrency=16)
    port = int(url.rsplit(":", 1)[1])
    held = [socket.create_connection(("127.0.0.1", port)) for _ in range(16)]
    try:
        time.sleep(0.3)
        assert httpx.get(f"{url}/healthz", timeout=10).status_code == 503
    finally:
        for sock in held:
            sock.close()
        api.stop()
