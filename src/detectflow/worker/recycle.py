"""Worker recycling: a process restarts gracefully after max_jobs_per_process jobs or above max_rss_mb."""

from __future__ import annotations

import logging
import os
import signal
from pathlib import Path

from dramatiq.middleware import Middleware

from detectflow.cli.supervisor import EXIT_RECYCLED
from detectflow.worker.context import WorkerContext

__all__ = ["Recycler", "recycle_reason", "rss_mb", "EXIT_RECYCLED"]

log = logging.getLogger("detectflow.worker")

#: Bytes per MiB.
_MIB = 1024 * 1024


def recycle_reason(jobs: int, rss: float, max_jobs: int, max_rss: int) -> str | None:
    """Why a process that ran ``jobs`` jobs and holds ``rss`` MiB should restart (limits of 0: none), or None."""
    if max_jobs and jobs >= max_jobs:
        return f"{jobs} jobs done (max_jobs_per_process {max_jobs})"
    if max_rss and rss > max_rss:
        return f"resident memory {rss:.0f} MiB above max_rss_mb {max_rss}"
    return None


def rss_mb(statm: Path = Path("/proc/self/statm")) -> float:
    """This process's resident set, MiB (0 where /proc is missing)."""
    try:
        pages = int(statm.read_text().split()[1])
    except (OSError, IndexError, ValueError):
        return 0.0
    return pages * os.sysconf("SC_PAGE_SIZE") / _MIB


class Recycler(Middleware):
    """Counts the jobs a process ran; past a limit it stops the process as SIGTERM would (finish the
    jobs in hand, requeue the prefetched ones) and exits ``EXIT_RECYCLED``, which ``detectflow up``
    restarts at once without counting a crash (a pod's container is restarted by the kubelet)."""

    def __init__(self, ctx: WorkerContext, kill=os.kill) -> None:
        self.ctx = ctx
        self.jobs = 0
        self.reason: str | None = None
        self._kill = kill
        self._worker = None

    def after_worker_boot(self, broker, worker):
        self._worker = worker

    def after_process_message(self, broker, message, *, result=None, exception=None):
        if message.actor_name != self.ctx.kind.actor_name or self.reason is not None:
            return
        self.jobs += 1
        s = self.ctx.settings
        rss = rss_mb() if s.worker_max_rss_mb else 0.0  # /proc is read only when there is a limit
        self.reason = recycle_reason(self.jobs, rss, s.worker_max_jobs_per_process, s.worker_max_rss_mb)
        if self.reason is not None:
            log.info("recycling this worker process: %s", self.reason)
            if self._worker is not None:  # take no new message while the stop comes (Worker.pause without its wait)
                for child in [*self._worker.consumers.values(), *self._worker.workers]:
                    child.pause()
            self._kill(os.getpid(), signal.SIGTERM)  # Dramatiq's own graceful stop

    def after_worker_shutdown(self, broker, worker):
        if self.reason is not None:
            for handler in logging.getLogger().handlers:
                handler.flush()
            os._exit(EXIT_RECYCLED)
