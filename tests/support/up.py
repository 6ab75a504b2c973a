"""`detectflow up` as a test subprocess, and the processes it leaves behind."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import httpx

from detectflow.cli.up import free_port
from tests.support.processes import ROOT, cli_env, wait_for

__all__ = ["UpProcess", "processes_with", "dramatiq_worker_processes"]


def processes_with(marker: str) -> list[int]:
    """PIDs of live processes whose environment contains ``marker``."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            if marker.encode() in (entry / "environ").read_bytes():
                status = (entry / "status").read_text()
                if "State:\tZ" not in status:
                    found.append(int(entry.name))
        except (OSError, PermissionError):
            continue
    return found


def _cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
    except OSError:
        return ""


def _ppid(pid: int) -> int:
    try:
        return int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1])
    except (OSError, IndexError, ValueError):
        return 0


def dramatiq_worker_processes(marker: str) -> list[int]:
    """Dramatiq worker processes (not their master) among the processes with ``marker``."""
    return [
        pid
        for pid in processes_with(marker)
        if " -m dramatiq " in _cmdline(pid) and " -m dramatiq " in _cmdline(_ppid(pid))
    ]


class UpProcess:
    """`detectflow up --task face` on a free (or the given) port, its output in ``log``; ready when it returns."""

    def __init__(
        self, state: Path, log: Path, port: int | None = None, args: tuple[str, ...] = (), workers: int = 1, **settings
    ) -> None:
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.env = cli_env(state_dir=state, log_format="text", **settings)
        self.env.pop("DETECTFLOW_ADMIN_KEY")  # as for a user: `up` makes <state>/admin.key
        self.state = state
        self.marker = f"DETECTFLOW_STATE_DIR={state}"
        self.log_path = log
        self.log = log.open("ab")
        self.workers = workers
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "detectflow.cli.main", "up", "--port", str(self.port), "--task", "face",
             "--no-build-models", "--workers", str(workers), *args],
            env=self.env,
            stdout=self.log,
            stderr=subprocess.STDOUT,
            cwd=ROOT,
        )  # fmt: skip
        wait_for(self._ready, 120, 0.2, what="detectflow up")

    @property
    def auth(self) -> dict[str, str]:
        """The header with the admin key `up` wrote to its state directory."""
        key_file = self.state / "admin.key"
        return {"Authorization": f"Bearer {key_file.read_text().strip()}"} if key_file.exists() else {}

    def _ready(self) -> bool:
        assert self.proc.poll() is None, f"detectflow up exited:\n{self.output()[-3000:]}"
        body = httpx.get(f"{self.url}/readyz", timeout=1, headers=self.auth).json()
        return len(body["workers"]["face"]) >= self.workers

    def output(self) -> str:
        return self.log_path.read_text(errors="replace")

    def stop(self, sig: int = signal.SIGINT) -> int:
        self.proc.send_signal(sig)
        code = self.proc.wait(60)
        self.log.close()
        return code
