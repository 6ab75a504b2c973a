"""Dramatiq middleware: job status bookkeeping, worker presence and fast recovery of dead workers."""

from __future__ import annotations

import logging
import os
import socket
import threading
import time

import dramatiq
from dramatiq.middleware import Middleware, SkipMessage

from detectflow.config import Task
from detectflow.jobs.models import DetectflowError, ErrorCode
from detectflow.logs import job_id_var, request_id_var
from detectflow.worker.context import WorkerContext

__all__ = ["JobLifecycle", "WorkerPresence", "failure_of"]

log = logging.getLogger("detectflow.worker")


def failure_of(exc: BaseException | None) -> tuple[str, str]:
    """The (code, message) a failed job reports for the exception that ended it."""
    if isinstance(exc, DetectflowError):
        return exc.code.value, exc.message
    if isinstance(exc, dramatiq.middleware.TimeLimitExceeded):
        return ErrorCode.timeout.value, "The job exceeded the worker's time limit."
    if exc is None:
        return ErrorCode.worker_error.value, "The job failed without an exception (dead-lettered)."
    return ErrorCode.worker_error.value, f"{type(exc).__name__}: {exc}"


class JobLifecycle(Middleware):
    """queued -> running before the actor, succeeded after it, failed once retries are exhausted."""

    def __init__(self, ctx: WorkerContext, on_finished) -> None:
        self.ctx = ctx
        self.on_finished = on_finished  # (task, job_id) -> None: a finished job with a webhook

    @staticmethod
    def _job(message) -> tuple[Task, str] | None:
        if message.actor_name.startswith("detect_"):
            return Task(message.actor_name.removeprefix("detect_")), message.args[0]
        return None

    def before_process_message(self, broker, message):
        job = self._job(message)
        if job is None:
            return
        task, job_id = job
        job_id_var.set(job_id)
        applied, old, request_id = self.ctx.store.mark_running(job_id)
        request_id_var.set(request_id)
        if not applied:
            # Expired, cancelled, or already finished by an earlier delivery: nothing to do.
            log.info("skipping message %s: job is %s", message.message_id, old or "gone")
            raise SkipMessage()
        log.info("job started (attempt %s)", message.options.get("retries", 0) + 1)

    def after_process_message(self, broker, message, *, result=None, exception=None):
        job = self._job(message)
        result = self.ctx.take_result() if job is not None else None
        if job is None or exception is not None or result is None:
            return
        task, job_id = job
        applied, has_webhook = self.ctx.store.mark_succeeded(
            job_id, result, task.value, result["timings_ms"]["inference"] / 1000
        )
        if applied:
            log.info("job succeeded with %d detections", len(result["detections"]))
            if has_webhook:
                self.on_finished(task, job_id)
        job_id_var.set(None)
        request_id_var.set(None)

    def after_skip_message(self, broker, message):
        job_id_var.set(None)
        request_id_var.set(None)

    def after_nack(self, broker, message):
        job = self._job(message)
        if job is None:
            return
        task, job_id = job
        code, text = failure_of(message._exception)
        applied, has_webhook = self.ctx.store.mark_failed(job_id, task.value, code, text)
        if applied:
            log.warning("job failed: %s: %s", code, text)
            if has_webhook:
                self.on_finished(task, job_id)
        job_id_var.set(None)
        request_id_var.set(None)


class WorkerPresence(Middleware):
    """Loads the model before consuming, then beats: a presence record for /readyz, and Dramatiq's
    own heartbeat plus maintenance, so a killed worker's messages return within seconds."""

    def __init__(self, ctx: WorkerContext, load_detector, queues: list[str]) -> None:
        self.ctx = ctx
        self.load_detector = load_detector
        self.queues = queues
        self.interval = max(1.0, ctx.settings.worker_dead_after_seconds / 6)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def before_worker_boot(self, broker, worker):
        s = self.ctx.settings
        self.ctx.worker_id = f"{socket.gethostname()}:{os.getpid()}:{broker.broker_id[:8]}"
        started = time.perf_counter()
        self.ctx.detector = self.load_detector(s.worker_task, s)
        self.ctx.detector.warmup()
        info = self.ctx.detector.info
        log.info(
            "model %s loaded and warmed up on %s in %.0f ms",
            info.name,
            info.provider,
            (time.perf_counter() - started) * 1000,
        )

    def after_worker_boot(self, broker, worker):
        self._beat(broker)
        self._thread = threading.Thread(target=self._run, args=(broker,), name="presence", daemon=True)
        self._thread.start()

    def before_worker_shutdown(self, broker, worker):
        self._stop.set()
        try:
            self.ctx.store.forget_worker(self.ctx.settings.worker_task.value, self.ctx.worker_id)
        except Exception:  # Redis may be gone already; presence expires by itself
            log.debug("could not remove presence record", exc_info=True)

    def _run(self, broker) -> None:
        while not self._stop.wait(self.interval):
            try:
                self._beat(broker)
            except Exception:
                log.warning("heartbeat failed", exc_info=True)

    def _beat(self, broker) -> None:
        info = self.ctx.detector.info if self.ctx.detector else None
        self.ctx.store.beat(
            self.ctx.settings.worker_task.value,
            self.ctx.worker_id,
            {
                "pid": os.getpid(),
                "model": info.name if info else None,
                "provider": info.provider if info else None,
            },
        )
        dispatch = broker.scripts["dispatch"]
        now = int(time.time() * 1000)
        for queue in self.queues:
            # "qsize" is cheap; with do_maintenance=1 it also requeues dead workers' messages.
            dispatch(
                args=["qsize", now, queue, broker.broker_id, broker.heartbeat_timeout,
                      broker.dead_message_ttl, 1, broker._max_unpack_size()],
                keys=[broker.namespace],
            )

