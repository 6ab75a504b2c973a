"""Servers built from Go modules by scripts/servers/build.sh, run as child processes on 127.0.0.1 (stdlib only).

    binary = ensure_built("prometheus")          # builds it (cached) when missing
    proc = ServerProcess([str(binary), ...], env, log_path)
    proc.wait_http("http://127.0.0.1:9090/-/ready")
    proc.stop()                                  # SIGTERM, then SIGKILL; no process of its group is left

Environment: ``DETECTFLOW_CACHE`` overrides the cache root (default ~/.cache/detectflow).
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
import urllib.error
import urllib.request
from pathlib import Path

__all__ = ["LOOPBACK", "ServerError", "ServerProcess", "bin_dir", "ensure_built", "pinned_versions"]

REPO_ROOT = Path(__file__).resolve().parents[2]
BUILD_SH = REPO_ROOT / "scripts" / "servers" / "build.sh"
VERSIONS_ENV = REPO_ROOT / "scripts" / "servers" / "versions.env"

#: Binaries of each build.sh component.
COMPONENT_BINARIES = {
    "versitygw": ("versitygw",),
    "minio": ("minio",),
    "prometheus": ("prometheus", "promtool"),
}
DEFAULT_STOP_TIMEOUT = 10.0  # seconds between SIGTERM and SIGKILL
#: urllib opener that ignores *_proxy variables: the servers are on 127.0.0.1.
LOOPBACK = urllib.request.build_opener(urllib.request.ProxyHandler({}))


class ServerError(RuntimeError):
    """A server could not be built, started or stopped."""


def pinned_versions() -> dict[str, str]:
    """The pins of scripts/servers/versions.env (``NAME=value``, comments stripped)."""
    out: dict[str, str] = {}
    for line in VERSIONS_ENV.read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if "=" in line:
            key, value = line.split("=", 1)
            out[key.strip()] = value.strip()
    return out


def bin_dir() -> Path:
    """Directory of the built binaries for the pinned versions (may not exist yet)."""
    out = subprocess.run(["bash", str(BUILD_SH), "--print-bin-dir"], capture_output=True, text=True, check=True)
    return Path(out.stdout.strip())


def ensure_built(binary: str) -> Path:
    """Path of ``binary``; runs ``build.sh --only <component>`` first when it is missing.

    Parameters
    ----------
    binary
        ``versitygw``, ``minio``, ``prometheus`` or ``promtool``.
    """
    component = next((c for c, bins in COMPONENT_BINARIES.items() if binary in bins), None)
    if component is None:
        raise ValueError(f"unknown server binary {binary!r}")
    path = bin_dir() / binary
    if not os.access(path, os.X_OK):
        proc = subprocess.run(["bash", str(BUILD_SH), "--only", component], capture_output=True, text=True)
        if proc.returncode != 0 or not os.access(path, os.X_OK):
            raise ServerError(f"building {component} failed:\n{proc.stderr[-4000:]}")
    return path


class ServerProcess:
    """A server binary in its own session, output in ``log``; ``stop()`` leaves no process of its group."""

    def __init__(self, args: list[str], env: dict[str, str], log: Path, cwd: Path | None = None) -> None:
        self.args = args
        self.log = log
        self._fh = log.open("ab")
        self.popen = subprocess.Popen(
            args, env=env, stdin=subprocess.DEVNULL, stdout=self._fh, stderr=subprocess.STDOUT,
            start_new_session=True, cwd=cwd,
        )  # fmt: skip

    @property
    def name(self) -> str:
        return Path(self.args[0]).name

    @property
    def pid(self) -> int:
        return self.popen.pid

    def alive(self) -> bool:
        return self.popen.poll() is None

    def output(self) -> str:
        return self.log.read_text(errors="replace")

    def wait_http(self, url: str, timeout: float = 60, ok: tuple[int, ...] = (200,)) -> None:
        """Poll ``url`` until it answers one of ``ok``; fail fast (with the log) if the process dies."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if not self.alive():
                self.stop()
                raise ServerError(f"{self.name} exited ({self.popen.returncode}):\n{self.output()[-3000:]}")
            try:
                with LOOPBACK.open(url, timeout=1) as resp:
                    if resp.status in ok:
                        return
            except urllib.error.HTTPError as exc:
                if exc.code in ok:
                    return
            except OSError:
                pass
            time.sleep(0.1)
        self.stop()
        raise ServerError(f"{url} not ready after {timeout} s:\n{self.output()[-3000:]}")

    def stop(self, timeout: float = DEFAULT_STOP_TIMEOUT) -> int | None:
        """SIGTERM, SIGKILL after ``timeout`` s, then make sure nothing of the process group survives."""
        if self.alive():
            self.popen.send_signal(signal.SIGTERM)
            try:
                self.popen.wait(timeout)
            except subprocess.TimeoutExpired:
                os.killpg(self.popen.pid, signal.SIGKILL)
                self.popen.wait()
        try:
            os.killpg(self.popen.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        deadline = time.monotonic() + 5
        while _group_alive(self.popen.pid):
            if time.monotonic() > deadline:
                raise ServerError(f"process group {self.popen.pid} survived SIGKILL")
            time.sleep(0.05)
        self._fh.close()
        return self.popen.returncode


def _group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
