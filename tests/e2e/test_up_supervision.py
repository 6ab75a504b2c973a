"""`detectflow up` supervises: a killed child comes back, no accepted job is lost, a crash loop stops it."""

from __future__ import annotations

import os
import re
import signal
import threading
from pathlib import Path

import httpx
import pytest
import redis

from detectflow.cli.up import free_port
from tests.support.images import image_bytes
from tests.support.processes import wait_for
from tests.support.up import UpProcess, dramatiq_worker_processes, processes_with

pytestmark = [pytest.mark.redis, pytest.mark.models, pytest.mark.slow]

#: Jobs submitted around the kill: enough that work is in flight, bounded for CI.
JOBS = 60


def _tcp_states(port: int) -> list[str]:
    """TCP states (hex, as in /proc/net/tcp) of the sockets whose local port is ``port``."""
    states = []
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for line in Path(table).read_text().splitlines()[1:]:
            fields = line.split()
            if int(fields[1].rsplit(":", 1)[1], 16) == port:
                states.append(fields[3])
    return states


def test_up_restarts_a_killed_worker_process_and_loses_no_job(tmp_path: Path):
    # Given `detectflow up` with two face worker processes (dead workers detected after 3 s)
    up = UpProcess(tmp_path / "state", tmp_path / "up.log", workers=2, worker_dead_after_seconds=3)
    data = image_bytes("astronaut")
    ids: list[str] = []
    answers: list[int] = []
    try:
        with httpx.Client(base_url=up.url, timeout=10, headers=up.auth) as client:
            # and jobs arriving all along (the API must keep answering during the restart)
            def submit_all():
                for n in range(JOBS):
                    res = client.post("/v1/jobs", files={"file": ("a.png", data)}, data={"task": "face", "cache": "false"})
                    answers.append(res.status_code)
                    if res.status_code == 202:
                        ids.append(res.json()["id"])
                    if n >= JOBS // 2:  # a burst (a backlog: both processes busy), then a steady trickle
                        threading.Event().wait(0.05)

            submitter = threading.Thread(target=submit_all)
            submitter.start()
            wait_for(lambda: len(ids) >= 10, 30, what="the first jobs")
            # When one Dramatiq worker process is killed outright while jobs are in flight
            victims = dramatiq_worker_processes(up.marker)
            assert len(victims) == 2, victims
            os.kill(victims[0], signal.SIGKILL)
            submitter.join(60)
            # Then every job was accepted, and every accepted job ends succeeded
            assert answers == [202] * JOBS, answers

            def all_final():
                jobs = [client.get(f"/v1/jobs/{i}").json() for i in ids]
                return all(j["status"] == "succeeded" for j in jobs) and jobs

            jobs = wait_for(all_final, 120, 0.5, what="every job to succeed")
            # (the job the killed process had in hand was requeued by the dead-worker recovery and run again)
            assert any(j["attempts"] > 1 for j in jobs), [j["attempts"] for j in jobs]
            # and the killed process's master was restarted with its exit logged
            out = up.output()
            assert "worker-face-" in out and "died: exit code 1; restarting in 1 s" in out, out[-3000:]
            assert "restarted (pid" in out
            wait_for(lambda: len(dramatiq_worker_processes(up.marker)) == 2, 30, what="two worker processes again")
            assert victims[0] not in dramatiq_worker_processes(up.marker)
            assert up.proc.poll() is None
    finally:
        code = up.stop(signal.SIGTERM)
    assert code == 0, up.output()[-3000:]
    assert processes_with(up.marker) == []


def test_up_stops_on_a_crash_loop_naming_the_child(tmp_path: Path):
    # Given `detectflow up` allowing 3 deaths of one child within 60 s
    up = UpProcess(
        tmp_path / "state", tmp_path / "up.log",
        up_crash_loop_restarts=3, up_crash_loop_window_seconds=60, up_restart_backoff_seconds=0.2,
    )  # fmt: skip
    try:
        # When its API keeps dying (killed outright each time it comes back)
        for death in range(3):
            pids = [p for p in processes_with(up.marker) if up.proc.poll() is None and _is_api(p)]
            assert len(pids) == 1, pids
            os.kill(pids[0], signal.SIGKILL)
            if death < 2:
                wait_for(lambda old=pids[0]: [p for p in processes_with(up.marker) if _is_api(p) and p != old],
                         30, 0.1, what="the API to be restarted")  # fmt: skip
        # Then `up` stops everything, non-zero, naming the child and showing its last log lines
        code = up.proc.wait(60)
    finally:
        if up.proc.poll() is None:
            up.stop()
    out = up.output()
    assert code == 1, out[-3000:]
    assert "api died 3 times within 60 s: a crash loop; stopping everything." in out, out[-3000:]
    assert "killed by SIGKILL" in out
    tail = out.split("Its last log lines:", 1)[1]
    assert "Uvicorn running on" in tail  # the API's own output
    assert "stopped." in out
    assert processes_with(up.marker) == []


def _is_api(pid: int) -> bool:
    try:
        return b"detectflow.cli.main\0api\0" in Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return False


def test_up_starts_again_at_once_on_the_same_port(tmp_path: Path):
    # Given `detectflow up` that served a keep-alive client, then stopped
    port = free_port()
    up = UpProcess(tmp_path / "state", tmp_path / "up.log", port=port)
    with httpx.Client(base_url=up.url) as client:  # keep-alive: the server closes it on stop
        assert client.get("/healthz").status_code == 200
        assert up.stop(signal.SIGINT) == 0
    # (the server side of that connection is in TIME-WAIT, which a plain bind trips on)
    assert "06" in _tcp_states(port), _tcp_states(port)
    # When it is started again at once on the same port
    again = UpProcess(tmp_path / "state", tmp_path / "up2.log", port=port)
    # Then it serves
    try:
        assert httpx.get(f"{again.url}/healthz").status_code == 200
    finally:
        assert again.stop(signal.SIGTERM) == 0


def test_up_restarts_a_killed_redis_on_its_append_only_file(tmp_path: Path):
    # Given `detectflow up --appendfsync always` with a finished job
    up = UpProcess(tmp_path / "state", tmp_path / "up.log", args=("--appendfsync", "always"))
    (redis_url,) = re.findall(r"redis-server on (redis://\S+) ", up.output())
    assert redis.Redis.from_url(redis_url).config_get("appendfsync") == {"appendfsync": "always"}
    try:
        with httpx.Client(base_url=up.url, timeout=10, headers=up.auth) as client:
            job = client.post("/v1/jobs", files={"file": ("a.png", image_bytes("astronaut"))}, data={"task": "face", "cache": "false"})
            job_id = job.json()["id"]
            wait_for(lambda: client.get(f"/v1/jobs/{job_id}").json()["status"] == "succeeded", 60, 0.2, what="the job")
            # When redis-server is killed outright
            (redis_pid,) = [p for p in _children(up.proc.pid) if b"redis-server" in _cmdline_bytes(p)]
            os.kill(redis_pid, signal.SIGKILL)
            # Then it is restarted on the same port and the job is still there (everysec loses nothing on a
            # process crash: the append-only file was written before the reply), and new jobs run
            wait_for(lambda: "redis restarted" in up.output(), 30, 0.2, what="the Redis restart")
            wait_for(lambda: client.get(f"/v1/jobs/{job_id}").json()["status"] == "succeeded", 30, 0.2, what="the job")
            again = client.post("/v1/jobs", files={"file": ("a.png", image_bytes("astronaut"))}, data={"task": "face", "cache": "false"})
            assert again.status_code == 202
            wait_for(lambda: client.get(f"/v1/jobs/{again.json()['id']}").json()["status"] == "succeeded", 60, 0.2,
                     what="a job after the restart")  # fmt: skip
        assert "redis (pid" in up.output() and "died: killed by SIGKILL" in up.output()
        # (the restarted redis-server kept the policy)
        assert redis.Redis.from_url(redis_url).config_get("appendfsync") == {"appendfsync": "always"}
    finally:
        assert up.stop(signal.SIGTERM) == 0, up.output()[-3000:]
    assert processes_with(up.marker) == []


def _cmdline_bytes(pid: int) -> bytes:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return b""


def _children(pid: int) -> list[int]:
    """PIDs of ``pid``'s children (redis-server rewrites its environment, so the marker misses it)."""
    out = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1]) == pid:
                    out.append(int(entry.name))
            except (OSError, IndexError, ValueError):
                continue
    return out


def test_up_killed_outright_takes_its_restarted_children_with_it(tmp_path: Path):
    # Given `detectflow up` whose worker was restarted once (spawned again from its main thread)
    up = UpProcess(tmp_path / "state", tmp_path / "up.log", up_restart_backoff_seconds=0.2)
    (victim,) = dramatiq_worker_processes(up.marker)
    os.kill(victim, signal.SIGKILL)
    wait_for(lambda: "restarted (pid" in up.output(), 30, 0.1, what="the restart")
    wait_for(lambda: [p for p in dramatiq_worker_processes(up.marker) if p != victim], 60, 0.2,
             what="the restarted worker process")  # fmt: skip
    # When `up` is killed with no chance to clean up
    up.proc.kill()
    up.proc.wait(10)
    up.log.close()
    # Then the restarted children die with it too (PR_SET_PDEATHSIG)
    wait_for(lambda: processes_with(up.marker) == [], 30, 0.2, what="the children to exit")
