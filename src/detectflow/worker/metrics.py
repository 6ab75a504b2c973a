"""Prometheus metrics of a worker process, served on the worker's metrics port (one per pod or `up` child).

Several processes of one ``detectflow worker --processes N`` share one port through prometheus_client's
multiprocess mode: the CLI points ``PROMETHEUS_MULTIPROC_DIR`` at a fresh directory, every process writes
its figures there, and the first process to bind the port serves them all (the others find it taken).
With one process per Dramatiq master (``detectflow up``), each gets a port of its own instead.
"""

from __future__ import annotations

import logging
import os

import dramatiq
from dramatiq.middleware import Middleware
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from detectflow.jobs.errors import ErrorCode
from detectflow.worker.tasks.base import Outcome

__all__ = [
    "MULTIPROC_ENV",
    "WorkerMetrics",
    "job_finished",
    "job_skipped",
    "model_loaded",
    "registry",
    "webhook_attempted",
]

log = logging.getLogger("detectflow.worker")

#: The environment variable prometheus_client reads at import to switch to multiprocess mode.
MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"
#: Inference buckets (seconds): a CPU detection is tens of milliseconds, a big image a few seconds.
INFERENCE_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
#: Queue-wait buckets (seconds): from submission to the start of the job that ran it.
QUEUE_WAIT_BUCKETS = (0.01, 0.05, 0.1, 0.5, 1.0, 5.0, 15.0, 60.0, 300.0, 900.0, 3600.0)
#: Batch-size buckets (images per inference call).
BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64)


def _multiprocess() -> bool:
    return bool(os.environ.get(MULTIPROC_ENV))


def _registry() -> CollectorRegistry:
    reg = CollectorRegistry()
    if _multiprocess():
        from prometheus_client import multiprocess

        multiprocess.MultiProcessCollector(reg)
    return reg


#: What the worker's port serves: this process's metrics, or every process's in multiprocess mode.
registry = _registry()
# In multiprocess mode the values live in files: the objects register nowhere, the collector reads the files.
_target = None if _multiprocess() else registry

JOBS = Counter(
    "detectflow_worker_jobs",
    "Jobs a worker finished, by kind and outcome (succeeded, failed, skipped).",
    ["kind", "outcome"],
    registry=_target,
)
ERRORS = Counter(
    "detectflow_worker_errors",
    "Failed job attempts by kind and error code (retried attempts included).",
    ["kind", "code"],
    registry=_target,
)
INFERENCE = Histogram(
    "detectflow_worker_inference_seconds",
    "Model inference time of a job.",
    ["kind"],
    buckets=INFERENCE_BUCKETS,
    registry=_target,
)
QUEUE_WAIT = Histogram(
    "detectflow_worker_queue_wait_seconds",
    "Time from a job's submission to its start on a worker.",
    ["kind"],
    buckets=QUEUE_WAIT_BUCKETS,
    registry=_target,
)
BATCH = Histogram(
    "detectflow_worker_batch_size",
    "Images per inference call.",
    ["kind"],
    buckets=BATCH_BUCKETS,
    registry=_target,
)
MODEL_LOAD = Gauge(
    "detectflow_worker_model_load_seconds",
    "Time the process took to load and warm up its model.",
    ["kind", "model", "provider"],
    registry=_target,
    multiprocess_mode="max",
)
WEBHOOKS = Counter(
    "detectflow_worker_webhook_deliveries",
    "Webhook delivery attempts by outcome (delivered, retried, failed: the last attempt failed; "
    "progress, progress_failed: a video job's job.progress deliveries).",
    ["kind", "outcome"],
    registry=_target,
)


def job_finished(kind: str, outcome: str, done: Outcome | None = None) -> None:
    """Count a finished job; a succeeded one also observes its inference, queue wait and batch size.

    Parameters
    ----------
    kind
        The job's kind (its task).
    outcome
        ``succeeded`` or ``failed``.
    done
        What the runner of a succeeded job handed back (seconds in the model, in the queue, and the
        inputs in the model run it shared).
    """
    JOBS.labels(kind, outcome).inc()
    if done is not None:
        INFERENCE.labels(kind).observe(done.inference_s)
        if done.queued_s is not None:
            QUEUE_WAIT.labels(kind).observe(max(0.0, done.queued_s))
        BATCH.labels(kind).observe(done.batch)


def job_skipped(kind: str) -> None:
    """Count a delivery that found its job expired, cancelled or already finished."""
    JOBS.labels(kind, "skipped").inc()


def model_loaded(kind: str, model: str, provider: str, seconds: float) -> None:
    """Record the model's load and warm-up time."""
    MODEL_LOAD.labels(kind, model, provider).set(seconds)


def webhook_attempted(kind: str, outcome: str) -> None:
    """Count a webhook delivery attempt (``delivered``, ``retried``, ``failed``; ``progress``, ``progress_failed``)."""
    WEBHOOKS.labels(kind, outcome).inc()


def error_code_of(exc: BaseException | None) -> str:
    """The stable error code a failed attempt reports for ``exc``."""
    from detectflow.worker.middleware import failure_of

    code: ErrorCode = failure_of(exc)[0]
    return code.value


class WorkerMetrics(Middleware):
    """Serves :data:`registry` on ``port`` once the process has forked; counts failed attempts and skips.

    ``port`` 0 serves nothing (the figures are still counted, and still reach the API's /metrics through Redis).
    """

    def __init__(self, kind: str, actor_name: str, host: str, port: int) -> None:
        self.kind = kind
        self.actor_name = actor_name
        self.host = host
        self.port = port
        self.server = None

    def after_process_boot(self, broker: dramatiq.Broker) -> None:
        if self.port == 0:
            return
        from prometheus_client import start_http_server

        try:
            self.server, _ = start_http_server(self.port, addr=self.host, registry=registry)
        except OSError as exc:  # another process of this worker serves the shared figures, or a clash
            level = logging.DEBUG if _multiprocess() else logging.WARNING
            log.log(level, "worker metrics not served by pid %d on %s:%d: %s", os.getpid(), self.host, self.port, exc)
            return
        log.info("worker metrics on http://%s:%d/metrics", self.host, self.port)

    def after_worker_shutdown(self, broker: dramatiq.Broker, worker: dramatiq.Worker) -> None:
        if self.server is not None:
            self.server.shutdown()
            self.server = None

    def after_process_message(self, broker, message, *, result=None, exception=None) -> None:
        if exception is not None and message.actor_name == self.actor_name:
            ERRORS.labels(self.kind, error_code_of(exception)).inc()

    def after_skip_message(self, broker, message) -> None:
        if message.actor_name == self.actor_name:
            job_skipped(self.kind)
