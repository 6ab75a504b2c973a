"""Prometheus metrics of the operator: reconcile counts, durations and errors, and each pipeline's Ready condition.

kopf has no Prometheus exporter of its own: :func:`serve` starts prometheus_client's HTTP server from a
kopf startup handler.
"""

from __future__ import annotations

import functools
import logging
import time
from collections.abc import Callable, Iterable
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

__all__ = ["forget_pipeline", "instrumented", "observe_conditions", "registry", "serve"]

log = logging.getLogger("detectflow.operator")

#: Reconcile duration buckets (seconds): a few API calls and a Redis read; slow API servers take seconds.
RECONCILE_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)

registry = CollectorRegistry()
RECONCILES = Counter(
    "detectflow_operator_reconciles",
    "Reconciles of a DetectionPipeline by trigger (change, resync) and outcome (ok, error).",
    ["trigger", "outcome"],
    registry=registry,
)
ERRORS = Counter(
    "detectflow_operator_reconcile_errors",
    "Failed reconciles by trigger and error (TemporaryError: retried; PermanentError: an invalid spec).",
    ["trigger", "error"],
    registry=registry,
)
DURATION = Histogram(
    "detectflow_operator_reconcile_duration_seconds",
    "Time of one reconcile.",
    ["trigger"],
    buckets=RECONCILE_BUCKETS,
    registry=registry,
)
CONDITION = Gauge(
    "detectflow_operator_pipeline_condition",
    "1 when a pipeline's condition of this type has status True, else 0.",
    ["namespace", "pipeline", "type"],
    registry=registry,
)


def instrumented(handler: Callable[..., Any], trigger: str) -> Callable[..., Any]:
    """``handler`` counted and timed under ``trigger``; its exceptions are counted and re-raised.

    Parameters
    ----------
    handler
        A kopf handler (called with keyword arguments only).
    trigger
        The label of what runs it: ``change`` (create, update, resume) or ``resync`` (the timer).
    """

    @functools.wraps(handler)
    def wrapper(**kwargs: Any) -> Any:
        started = time.perf_counter()
        try:
            result = handler(**kwargs)
        except Exception as exc:
            RECONCILES.labels(trigger, "error").inc()
            ERRORS.labels(trigger, type(exc).__name__).inc()
            raise
        finally:
            DURATION.labels(trigger).observe(time.perf_counter() - started)
        RECONCILES.labels(trigger, "ok").inc()
        return result

    return wrapper


def observe_conditions(namespace: str, name: str, conditions: Iterable[Any]) -> None:
    """Export each condition (objects with ``type`` and ``status``) of one pipeline as 1 (True) or 0."""
    for cond in conditions:
        CONDITION.labels(namespace, name, cond.type).set(1.0 if cond.status == "True" else 0.0)


def forget_pipeline(namespace: str, name: str) -> None:
    """Drop a deleted pipeline's series (so its last Ready=False does not alert forever)."""
    for sample in list(CONDITION.collect()[0].samples):
        labels = sample.labels
        if labels["namespace"] == namespace and labels["pipeline"] == name:
            CONDITION.remove(namespace, name, labels["type"])


def serve(host: str, port: int):
    """Serve :data:`registry` at ``http://host:port/metrics`` from a thread; port 0 serves nothing.

    Returns
    -------
    object or None
        The server (``shutdown()`` stops it), or None.
    """
    if not port:
        return None
    from prometheus_client import start_http_server

    server, _ = start_http_server(port, addr=host, registry=registry)
    log.info("operator metrics on http://%s:%d/metrics", host, port)
    return server
