"""The hard deadline: a watchdog that ends a worker process whose job is stuck in native code, and its heartbeat file."""

from __future__ import annotations

import logging
import os
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from dramatiq.middleware import Middleware

from detectflow.blobs.expiry import blob_expires_at
from detectflow.jobs.errors import ErrorCode
from detectflow.worker.broker import webhook_message
from detectflow.worker.context import WorkerContext

__all__ = ["HardDeadline", "overdue", "EXIT_WEDGED", "DEFAULT_TICK_SECONDS", "heartbeat_file"]

log = logging.getLogger("detectflow.worker")

#: Exit status of a worker process ended by its watchdog (a job past its hard deadline).
EXIT_WEDGED = 4
#: How often the watchdog looks at the running jobs and touches the heartbeat file (seconds).
DEFAULT_TICK_SECONDS = 1.0


@dataclass(frozen=True, slots=True)
class Running:
    """A job in hand: its id and when (monotonic seconds) its delivery started."""

    job_id: str
    started: float


def overdue(running: dict[int, Running], now: float, deadline_s: float) -> Running | None:
    """The longest-running job past ``deadline_s`` seconds, or None.

    Parameters
    ----------
    running
        The jobs in hand, by worker thread.
    now
        The current monotonic time (seconds).
    deadline_s
        The time limit plus its grace (seconds).
    """
    late = [r for r in running.values() if now - r.started > deadline_s]
    return min(late, key=lambda r: r.started) if late else None


def heartbeat_file(directory: Path, pid: int) -> Path:
    """Where the worker process ``pid`` touches its heartbeat (read by ``detectflow.worker.probe``)."""
    return directory / f"worker-{pid}.beat"


class HardDeadline(Middleware):
    """Dramatiq's time limit raises an exception in the job's thread, which only lands once native
    code (onnxruntime, OpenCV) returns to Python. A job still running its limit plus a grace later
    is failed ``timeout`` and the whole process exits (``EXIT_WEDGED``): the supervisor (``detectflow
    up``, or the pod) restarts it, and its other messages are redelivered to live workers.

    The same thread touches the process's heartbeat file (``worker_heartbeat_dir``) each tick, so a
    process whose threads are all stuck (a C call holding the GIL) goes stale and its pod's liveness
    probe restarts it.
    """

    def __init__(self, ctx: WorkerContext, tick_s: float = DEFAULT_TICK_SECONDS, exit=os._exit) -> None:
        self.ctx = ctx
        self.tick_s = tick_s
        self.deadline_s = ctx.settings.worker_time_limit_seconds + ctx.settings.worker_hard_deadline_grace_seconds
        self._exit = exit
        self._running: dict[int, Running] = {}
        self._lock = threading.Lock()
        self._stop = threading.Event()
        directory = ctx.settings.worker_heartbeat_dir
        self.heartbeat = heartbeat_file(Path(directory), os.getpid()) if directory else None

    def _is_job(self, message) -> bool:
        return message.actor_name == self.ctx.kind.actor_name

    def before_process_message(self, broker, message):
        if self._is_job(message):
            with self._lock:
                self._running[threading.get_ident()] = Running(message.args[0], time.monotonic())

    def _done(self, message) -> None:
        if self._is_job(message):
            with self._lock:
                self._running.pop(threading.get_ident(), None)

    def after_process_message(self, broker, message, *, result=None, exception=None):
        self._done(message)

    def after_skip_message(self, broker, message):
        self._done(message)

    def after_worker_boot(self, broker, worker):
        if self.heartbeat is not None:
            self.heartbeat = heartbeat_file(self.heartbeat.parent, os.getpid())  # the forked process's own
            self.heartbeat.parent.mkdir(parents=True, exist_ok=True)
        threading.Thread(target=self._run, name="hard-deadline", daemon=True).start()

    def before_worker_shutdown(self, broker, worker):
        self._stop.set()
        if self.heartbeat is not None:
            self.heartbeat.unlink(missing_ok=True)

    def _run(self) -> None:
        while not self._stop.wait(self.tick_s):
            self.check(time.monotonic())

    def check(self, now: float) -> Running | None:
        """One tick: touch the heartbeat; end the process if a job is past its hard deadline."""
        if self.heartbeat is not None:
            self.heartbeat.touch()
        with self._lock:
            late = overdue(self._running, now, self.deadline_s)
        if late is None:
            return None
        log.critical(
            "job %s still running %.0f s after its start (time limit %d s + grace): ending this worker process",
            late.job_id,
            now - late.started,
            self.ctx.settings.worker_time_limit_seconds,
        )
        try:
            self.ctx.store.mark_failed(
                late.job_id,
                self.ctx.kind.task.value,
                ErrorCode.timeout,
                "The job exceeded the worker's time limit in native code; its worker process was restarted.",
                webhook_message(self.ctx.kind, late.job_id),
                None if self.ctx.expiry is None else blob_expires_at(self.ctx.settings.job_ttl_seconds, time.time()),
            )
        finally:
            for handler in logging.getLogger().handlers:
                handler.flush()
            self._exit(EXIT_WEDGED)
        return late
