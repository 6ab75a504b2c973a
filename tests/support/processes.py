"""Real processes for integration tests: redis-server, API and worker subprocesses on loopback."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import httpx

from detectflow.cli.up import free_port
from tests.support import polling

__all__ = ["wait_for", "Proc", "start_api", "start_worker", "cli_env", "TEST_ADMIN_KEY", "AUTH"]

ROOT = Path(__file__).resolve().parents[2]

#: The admin key every test API bootstraps (DETECTFLOW_ADMIN_KEY), and the header that sends it.
TEST_ADMIN_KEY = "dfk_test-admin-0123456789abcdefghijklmnopqrstuv"
AUTH = {"Authorization": f"Bearer {TEST_ADMIN_KEY}"}


def wait_for(predicate: Callable[[], object], timeout: float, interval: float = 0.05, what: str = "condition"):
    """Poll ``predicate`` (every 50 ms by default) until it returns something truthy; fail after ``timeout`` s."""
    return polling.wait_for(predicate, timeout, interval, what)


def cli_env(**settings: object) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("DETECTFLOW_")}
    env["DETECTFLOW_LOG_FORMAT"] = "json"
    env["DETECTFLOW_ADMIN_KEY"] = TEST_ADMIN_KEY
    env["DETECTFLOW_API_METRICS_PORT"] = "0"
    env["DETECTFLOW_WORKER_METRICS_PORT"] = "0"
    for key, value in settings.items():
        env[f"DETECTFLOW_{key.upper()}"] = str(value)
    return env


class Proc:
    """A detectflow subprocess in its own process group, always reaped."""

    def __init__(self, args: list[str], env: dict[str, str], log: Path) -> None:
        self.log = log
        self._fh = log.open("ab")
        self.popen = subprocess.Popen(
            [sys.executable, "-m", "detectflow.cli.main", *args],
            env=env,
            stdout=self._fh,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            cwd=ROOT,
        )

    @property
    def pid(self) -> int:
        return self.popen.pid

    def signal(self, sig: int) -> None:
        if self.popen.poll() is None:
            os.killpg(self.popen.pid, sig) if sig == signal.SIGKILL else self.popen.send_signal(sig)

    def stop(self, timeout: float = 30) -> int:
        if self.popen.poll() is None:
            self.popen.send_signal(signal.SIGTERM)
            try:
                self.popen.wait(timeout)
            except subprocess.TimeoutExpired:
                os.killpg(self.popen.pid, signal.SIGKILL)
                self.popen.wait()
        try:  # nothing of the group may survive
            os.killpg(self.popen.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        self._fh.close()
        return self.popen.returncode

    def output(self) -> str:
        return self.log.read_text(errors="replace")


def start_api(env: dict[str, str], log: Path) -> tuple[Proc, str]:
    port = free_port()
    proc = Proc(["api", "--host", "127.0.0.1", "--port", str(port)], env, log)
    url = f"http://127.0.0.1:{port}"
    wait_for(lambda: httpx.get(f"{url}/healthz", timeout=1).status_code == 200, 30, what="the API")
    return proc, url


def start_worker(env: dict[str, str], log: Path, task: str = "face", wait_ready: Callable[[], bool] | None = None) -> Proc:
    proc = Proc(["worker", "--task", task], env, log)
    if wait_ready is not None:
        try:
            wait_for(lambda: proc.popen.poll() is None and wait_ready(), 120, 0.1, what=f"the {task} worker")
        except TimeoutError:
            proc.stop()
            raise AssertionError(f"worker did not become ready:\n{proc.output()[-4000:]}") from None
    return proc
