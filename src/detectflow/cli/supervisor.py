"""Supervision of `detectflow up`'s children: restart with exponential backoff, stop on a crash loop."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

__all__ = ["RestartPolicy", "restart_delay", "describe_exit", "Child", "Supervisor", "DEFAULT_TAIL_LINES", "EXIT_RECYCLED"]

#: Exit status of a child that stopped on purpose to be restarted (a recycled worker, EX_TEMPFAIL):
#: restarted at once, not counted as a crash.
EXIT_RECYCLED = 75
#: Log lines of each child kept for the crash-loop message.
DEFAULT_TAIL_LINES = 20


@dataclass(frozen=True)
class RestartPolicy:
    """When to restart a child that died, and when to give up.

    Parameters
    ----------
    backoff_seconds
        Delay before the first restart; it doubles with each further death within the window.
    max_backoff_seconds
        Longest delay before a restart.
    crash_loop_restarts
        Deaths of one child within ``window_seconds`` that count as a crash loop (stop everything).
    window_seconds
        How far back deaths are counted, s.
    """

    backoff_seconds: float = 1.0
    max_backoff_seconds: float = 30.0
    crash_loop_restarts: int = 5
    window_seconds: float = 120.0


def restart_delay(deaths: Sequence[float], now: float, policy: RestartPolicy) -> float | None:
    """Seconds to wait before restarting a child, or None when it is in a crash loop.

    Parameters
    ----------
    deaths
        Monotonic times at which the child died, the latest included.
    now
        The monotonic time now.
    policy
        The restart policy.

    Returns
    -------
    float or None
        ``backoff_seconds * 2 ** (recent - 1)`` capped at ``max_backoff_seconds``, where ``recent`` is the
        number of deaths within the window; None once ``recent`` reaches ``crash_loop_restarts``.
    """
    recent = sum(1 for t in deaths if now - t <= policy.window_seconds)
    if recent >= policy.crash_loop_restarts:
        return None
    return min(policy.max_backoff_seconds, policy.backoff_seconds * 2 ** max(0, recent - 1))


def describe_exit(returncode: int) -> str:
    """``exit code 1`` or ``killed by SIGKILL``, from a ``Popen.returncode``."""
    if returncode < 0:
        try:
            return f"killed by {signal.Signals(-returncode).name}"
        except ValueError:
            return f"killed by signal {-returncode}"
    return f"exit code {returncode}"


@dataclass
class Child:
    """One supervised process: how to start it, the running process, its deaths and its last log lines.

    ``start`` returns a new process in its own process group. When that process has a stdout pipe, its
    lines are forwarded to this process's stderr and the last ones kept; otherwise ``log_file`` (if
    given) is read for them.
    """

    name: str
    start: Callable[[], subprocess.Popen]
    log_file: Path | None = None
    proc: subprocess.Popen | None = None
    deaths: list[float] = field(default_factory=list)
    restart_at: float | None = None
    lines: deque[str] = field(default_factory=lambda: deque(maxlen=DEFAULT_TAIL_LINES))
    reaped: bool = False
    _reader: threading.Thread | None = None

    def launch(self) -> None:
        """Start the process (from the main thread: PR_SET_PDEATHSIG follows the thread that forked)."""
        self.proc = self.start()
        self.restart_at = None
        self.reaped = False
        if self.proc.stdout is not None:
            self._reader = threading.Thread(target=self._forward, args=(self.proc.stdout,), daemon=True)
            self._reader.start()

    def _forward(self, stream) -> None:
        out = getattr(sys.stderr, "buffer", None)
        for raw in iter(stream.readline, b""):
            self.lines.append(raw.decode(errors="replace").rstrip("\n"))
            if out is not None:
                try:
                    out.write(raw)
                    out.flush()
                except (OSError, ValueError):  # our terminal is gone: keep draining the child's pipe
                    out = None
        stream.close()

    def reap(self) -> None:
        """After the process exited: kill what is left of its group, collect its last log lines."""
        if self.reaped:
            return
        self.reaped = True
        # e.g. Dramatiq's worker processes when their master was killed outright. While a member lives
        # the group id cannot be reused, so this never reaches an unrelated process.
        if _group_has_members(self.proc.pid):
            try:
                os.killpg(self.proc.pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass
        if self._reader is not None:
            self._reader.join(2.0)
            self._reader = None

    def last_lines(self) -> list[str]:
        """The child's last log lines (its output, or the tail of its log file)."""
        if self.lines:
            return list(self.lines)
        if self.log_file is not None and self.log_file.exists():
            return self.log_file.read_text(errors="replace").splitlines()[-DEFAULT_TAIL_LINES:]
        return []


def _group_has_members(pgid: int) -> bool:
    """Whether a live process is in process group ``pgid`` (read from /proc; False where there is none)."""
    try:
        entries = os.listdir("/proc")
    except OSError:
        return False
    for name in entries:
        if not name.isdigit():
            continue
        try:
            with open(f"/proc/{name}/stat") as fh:
                fields = fh.read().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        if len(fields) > 2 and fields[0] != "Z" and int(fields[2]) == pgid:
            return True
    return False


class Supervisor:
    """Keep children running: restart the dead with backoff, report the first one in a crash loop."""

    def __init__(self, children: list[Child], policy: RestartPolicy, say: Callable[[str], None]) -> None:
        self.children = children
        self.policy = policy
        self.say = say

    def start_all(self) -> None:
        """Start every child that has no process yet."""
        for child in self.children:
            if child.proc is None:
                child.launch()

    def poll(self, now: float | None = None) -> Child | None:
        """Restart children whose backoff is over, note new deaths; return a child in a crash loop, if any."""
        now = time.monotonic() if now is None else now
        for child in self.children:
            if child.restart_at is not None:
                if now >= child.restart_at:
                    child.launch()
                    self.say(f"[yellow]{child.name} restarted[/] (pid {child.proc.pid})")
                continue
            code = child.proc.poll()
            if code is None:
                continue
            child.reap()
            if code == EXIT_RECYCLED:
                child.launch()
                self.say(f"{child.name} recycled (pid {child.proc.pid})")
                continue
            child.deaths.append(now)
            delay = restart_delay(child.deaths, now, self.policy)
            if delay is None:
                self.say(f"[red]{child.name} (pid {child.proc.pid}) died: {describe_exit(code)}[/]")
                return child
            child.restart_at = now + delay
            recent = sum(1 for t in child.deaths if now - t <= self.policy.window_seconds)
            self.say(
                f"[yellow]{child.name} (pid {child.proc.pid}) died: {describe_exit(code)}; restarting in "
                f"{delay:g} s[/] (death {recent} of {self.policy.crash_loop_restarts} allowed within "
                f"{self.policy.window_seconds:g} s)"
            )
        return None

    def stop_all(self, timeout: float, say: Callable[[str], None] | None = None) -> None:
        """SIGTERM every running child, wait up to ``timeout`` s, then SIGKILL the groups still there."""
        say = say or self.say
        running = [c for c in self.children if c.restart_at is None and c.proc is not None and c.proc.poll() is None]
        for child in running:
            child.proc.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + timeout
        for child in running:
            try:
                child.proc.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                say(f"[yellow]{child.name} did not stop in time; killing it[/]")
                os.killpg(child.proc.pid, signal.SIGKILL)
                child.proc.wait()
        for child in self.children:
            if child.proc is not None and child.proc.poll() is not None:
                child.reap()
