"""Dramatiq middleware: job status bookkeeping, worker presence and fast recovery of dead workers."""

from __future__ import annotations

import logging
import os
import socket
import threading
import time

import dramatiq
from dramatiq.middleware import Middleware, SkipMessage

from detectflow.jobs.errors import DetectflowError, ErrorCode
from detectflow.logs import job_id_var, request_id_var
from detectflow.video.storage import job_status
from detectflow.worker.broker import WakeupRedisBroker
from detectflow.worker import metrics
from detectflow.worker.context import WorkerContext
from detectflow.worker.tasks.base import Outcome

__all__ = ["JobLifecycle", "WorkerPresence", "failure_of"]

log = logging.getLogger("detectflow.worker")

#: Exit status of a worker process whose model cannot be loaded.
EXIT_MODEL_FAILED = 3


def failure_of(exc: BaseException | None) -> tuple[ErrorCode, str]:
    """The (code, message) a failed job reports for the exception that ended it."""
    if isinstance(exc, DetectflowError):
        return exc.code, exc.message
    if isinstance(exc, dramatiq.middleware.TimeLimitExceeded):
        return ErrorCode.timeout, "The job exceeded the worker's time limit."
    if exc is None:
        return ErrorCode.worker_error, "The job failed without an exception (dead-lettered)."
    return ErrorCode.worker_error, f"{type(exc).__name__}: {exc}"


class JobLifecycle(Middleware):
    """queued -> running before the actor, succeeded after it, failed once retries are exhausted.

    Both ends go through :meth:`succeed` and :meth:`fail`: the final transition, then the webhook.
    """

    def __init__(self, ctx: WorkerContext, webhook_actor: dramatiq.Actor) -> None:
        self.ctx = ctx
        self.webhook_actor = webhook_actor

    def _job_id(self, message) -> str | None:
        kind = self.ctx.kind
        return message.args[0] if message.actor_name in (kind.actor_name, kind.segment_actor_name) else None

    def succeed(self, job_id: str, outcome: Outcome) -> None:
        """The success path: store the result (running -> succeeded), then send the webhook."""
        applied, has_webhook = self.ctx.store.mark_succeeded(
            job_id, outcome.result, self.ctx.kind.task.value, outcome.inference_s
        )
        if applied:
            metrics.job_finished(self.ctx.kind.task.value, "succeeded", outcome)
            log.info("job succeeded: %s", outcome.summary or "done")
            if has_webhook:
                self.webhook_actor.send(job_id)

    def fail(self, job_id: str, code: ErrorCode, text: str) -> None:
        """The failure path: store the reason (-> failed), then send the webhook."""
        applied, has_webhook = self.ctx.store.mark_failed(job_id, self.ctx.kind.task.value, code, text)
        if applied:
            metrics.job_finished(self.ctx.kind.task.value, "failed")
            log.warning("job failed: %s: %s", code.value, text)
            if has_webhook:
                self.webhook_actor.send(job_id)

    def before_process_message(self, broker, message):
        job_id = self._job_id(message)
        if job_id is None:
            return
        job_id_var.set(job_id)
        if message.actor_name == self.ctx.kind.segment_actor_name:
            # a video's segment runs only while its job runs: cancelling the job skips the segments left
            status = job_status(self.ctx.store.client, self.ctx.store.keys, job_id)
            if status != "running":
                log.info("skipping segment %s: job is %s", message.args[1], status or "gone")
                raise SkipMessage()
            return
        applied, old, request_id = self.ctx.store.mark_running(job_id)
        request_id_var.set(request_id)
        if not applied:
            # Expired, cancelled, or already finished by an earlier delivery: nothing to do.
            log.info("skipping message %s: job is %s", message.message_id, old or "gone")
            raise SkipMessage()
        log.info("job started (attempt %s)", message.options.get("retries", 0) + 1)

    def after_process_message(self, broker, message, *, result=None, exception=None):
        job_id = self._job_id(message)
        if job_id is None:
            return
        outcome = self.ctx.take_outcome()
        if exception is None and outcome is not None and outcome.result is not None:
            self.succeed(job_id, outcome)
        self._forget()

    def after_skip_message(self, broker, message):
        self._forget()

    def after_nack(self, broker, message):
        job_id = self._job_id(message)
        if job_id is None:
            return
        self.fail(job_id, *failure_of(message._exception))
        self._forget()

    @staticmethod
    def _forget() -> None:
        job_id_var.set(None)
        request_id_var.set(None)


class WorkerPresence(Middleware):
    """Loads the model before consuming, then beats: a presence record for /readyz, and Dramatiq's
    own heartbeat plus maintenance, so a killed worker's messages return within seconds.

    ``queues`` are the queues (their ``.DQ`` included) whose dead workers' messages this process requeues.
    """

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
        try:
            self.ctx.detector = self.load_detector(self.ctx.kind.task, s)
            self.ctx.detector.warmup()
        except Exception as exc:
            # Dramatiq logs and ignores exceptions of boot hooks: a worker without its model would
            # beat, look ready and fail every job. Exit instead, so the supervisor (or the pod) sees it.
            log.critical("cannot load the %s model: %s: %s", self.ctx.kind.task.value, type(exc).__name__, exc)
            raise SystemExit(EXIT_MODEL_FAILED) from exc
        info = self.ctx.detector.info
        metrics.model_loaded(self.ctx.kind.task.value, info.name, info.provider, time.perf_counter() - started)
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
            self.ctx.store.forget_worker(self.ctx.kind.task.value, self.ctx.worker_id)
        except Exception:  # Redis may be gone already; presence expires by itself
            log.debug("could not remove presence record", exc_info=True)

    def _run(self, broker) -> None:
        while not self._stop.wait(self.interval):
            try:
                self._beat(broker)
            except Exception:
                log.warning("heartbeat failed", exc_info=True)

    def _beat(self, broker: WakeupRedisBroker) -> None:
        info = self.ctx.detector.info if self.ctx.detector else None
        self.ctx.store.beat(
            self.ctx.kind.task.value,
            self.ctx.worker_id,
            {
                "pid": os.getpid(),
                "model": info.name if info else None,
                "provider": info.provider if info else None,
            },
        )
        for queue in self.queues:
            broker.run_maintenance(queue)
