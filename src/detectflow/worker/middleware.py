"""Dramatiq middleware: job status bookkeeping, worker presence and fast recovery of dead workers."""

from __future__ import annotations

import logging
import os
import socket
import threading
import time

import dramatiq
from dramatiq.middleware import Middleware, SkipMessage

from detectflow.blobs.expiry import blob_expires_at
from detectflow.jobs.errors import DetectflowError, ErrorCode
from detectflow.jobs.stores.redis import Delivery
from detectflow.logs import job_id_var, request_id_var
from detectflow.video.storage import job_status
from detectflow.worker import metrics
from detectflow.worker.broker import WakeupRedisBroker, webhook_message
from detectflow.worker.context import WorkerContext
from detectflow.worker.durable import durably
from detectflow.worker.isolation import SharedExclusiveLock
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
    """queued -> running before the actor, succeeded after it, retrying while a retry waits, failed
    once retries are exhausted or the delivery cap is reached.

    Both ends go through :meth:`succeed` and :meth:`fail`: the final transition, with the webhook's
    message enqueued in the same Redis step (the outbox).
    """

    def __init__(self, ctx: WorkerContext, webhook_actor: dramatiq.Actor | None = None) -> None:
        self.ctx = ctx
        self.webhook_actor = webhook_actor  # its message is sent by the final transition itself
        self.isolation = SharedExclusiveLock()  # crash suspects run alone in the process
        self._held = threading.local()

    def _start(self, job_id: str, cap: int) -> Delivery:
        """Start the delivery under the process's lock: shared, or exclusive for a crash suspect.

        A job still reading running at delivery was held by a worker that died: it is left as it is,
        the shared hold is traded for the exclusive one, and it is started then, so it runs alone.
        """
        self._hold(False)
        delivery = durably(lambda: self.ctx.store.start_delivery(job_id, cap, suspects=False), "starting the job")
        if delivery.suspect:
            self._release()
            self._hold(True)
            delivery = durably(lambda: self.ctx.store.start_delivery(job_id, cap), "starting the job")
        return delivery

    def _hold(self, exclusive: bool) -> None:
        self.isolation.acquire(exclusive)
        self._held.exclusive = exclusive

    def _release(self) -> None:
        exclusive = getattr(self._held, "exclusive", None)
        if exclusive is not None:
            self._held.exclusive = None
            self.isolation.release(exclusive)

    def _blob_expiry(self) -> float | None:
        """When a job ending now leaves its input blob: ``job_ttl`` from now, with its record (None: no expiry set)."""
        if self.ctx.expiry is None:
            return None
        return blob_expires_at(self.ctx.settings.job_ttl_seconds, time.time())

    def _job_id(self, message) -> str | None:
        kind = self.ctx.kind
        return message.args[0] if message.actor_name in (kind.actor_name, kind.segment_actor_name) else None

    def succeed(self, job_id: str, outcome: Outcome) -> None:
        """The success path: store the result (running -> succeeded) and enqueue the webhook, in one step.

        A job cancelled while it ran is not stored (the transition is refused): this is its safe point.
        """
        pool = self.ctx.kind.served_by.value
        webhook = webhook_message(self.ctx.kind, job_id)
        applied, _ = durably(
            lambda: self.ctx.store.mark_succeeded(
                job_id, outcome.result, pool, outcome.inference_s, webhook, self._blob_expiry()
            ),
            "storing the result",
        )
        if applied:
            metrics.job_finished(pool, "succeeded", outcome)
            log.info("job succeeded: %s", outcome.summary or "done")
        else:
            log.info("result dropped: the job was cancelled (or finished) while it ran")

    def fail(self, job_id: str, code: ErrorCode, text: str) -> None:
        """The failure path: store the reason (-> failed) and enqueue the webhook, in one step."""
        pool = self.ctx.kind.served_by.value
        webhook = webhook_message(self.ctx.kind, job_id)
        applied, _ = durably(
            lambda: self.ctx.store.mark_failed(job_id, pool, code, text, webhook, self._blob_expiry()),
            "storing the failure",
        )
        if applied:
            metrics.job_finished(pool, "failed")
            log.warning("job failed: %s: %s", code.value, text)

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
        cap = self.ctx.settings.worker_max_deliveries
        delivery = self._start(job_id, cap)
        request_id_var.set(delivery.request_id)
        if delivery.capped:
            # The worker died under this job each time: a poison message. Fail it and dead-letter it.
            self.fail(job_id, ErrorCode.worker_crashed, f"The worker running the job died {delivery.crashed} times.")
            message.fail()
            raise SkipMessage()
        if not delivery.started:
            # Expired, cancelled, or already finished by an earlier delivery: nothing to do.
            log.info("skipping message %s: job is %s", message.message_id, delivery.previous or "gone")
            raise SkipMessage()
        self.ctx.started(delivery.job)  # the actor's load takes the record from here
        if delivery.crashed:
            log.warning("job redelivered after %d crashed deliveries (cap %d)", delivery.crashed, cap)
        attempt = message.options.get("retries", 0) + 1
        # a first attempt's start is a debug line (its end is logged); a retry's or redelivery's is news
        log.log(logging.INFO if attempt > 1 or delivery.crashed else logging.DEBUG, "job started (attempt %s)", attempt)

    def before_enqueue(self, broker, message, delay):
        # Dramatiq's Retries middleware re-enqueues a failed job with a delay: running -> retrying
        # first, so the retry never finds its job still reading running. (A video segment's retry
        # leaves its job running: the other segments go on.)
        if message.actor_name != self.ctx.kind.actor_name:
            return
        job_id = message.args[0]
        if delay is not None and message.options.get("retries", 0) > 0:
            durably(lambda: self.ctx.store.mark_retrying(job_id), "marking the retry")

    def after_process_message(self, broker, message, *, result=None, exception=None):
        job_id = self._job_id(message)
        if job_id is None:
            return
        outcome = self.ctx.take_outcome()
        try:
            # a result of None leaves the job running: a video's other segments finish it
            if exception is None and outcome is not None and outcome.result is not None:
                self.succeed(job_id, outcome)
        finally:
            self._release()
            self.ctx.started(None)
        self._forget()

    def after_skip_message(self, broker, message):
        self._release()
        self.ctx.started(None)
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

    def __init__(self, ctx: WorkerContext, load_detector, queues: list[str], load_embedder=None) -> None:
        self.ctx = ctx
        self.load_detector = load_detector
        self.load_embedder = load_embedder
        self.queues = queues
        self.interval = max(1.0, ctx.settings.worker_dead_after_seconds / 6)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def before_worker_boot(self, broker, worker):
        s = self.ctx.settings
        self.ctx.worker_id = f"{socket.gethostname()}:{os.getpid()}:{broker.broker_id[:8]}"
        started = time.perf_counter()
        try:
            self.ctx.detector = self.load_detector(self.ctx.kind.served_by, s)
            self.ctx.detector.warmup()
            if self.ctx.needs_embedder:
                self.ctx.embedder = self.load_embedder(s)
                self.ctx.embedder.warmup()
        except Exception as exc:
            # Dramatiq logs and ignores exceptions of boot hooks: a worker without its model would
            # beat, look ready and fail every job. Exit instead, so the supervisor (or the pod) sees it.
            log.critical("cannot load the %s model: %s: %s", self.ctx.kind.served_by.value, type(exc).__name__, exc)
            raise SystemExit(EXIT_MODEL_FAILED) from exc
        info = self.ctx.detector.info
        metrics.model_loaded(self.ctx.kind.served_by.value, info.name, info.provider, time.perf_counter() - started)
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
            self.ctx.store.forget_worker(self.ctx.kind.served_by.value, self.ctx.worker_id)
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
            self.ctx.kind.served_by.value,
            self.ctx.worker_id,
            {
                "pid": os.getpid(),
                "model": info.name if info else None,
                "provider": info.provider if info else None,
            },
        )
        for queue in self.queues:
            broker.run_maintenance(queue)
