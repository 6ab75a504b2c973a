"""Prometheus metrics of the API process, plus job and queue figures read from Redis at scrape time."""

from __future__ import annotations

import logging

from prometheus_client import CollectorRegistry, Counter, Histogram
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily

from detectflow.config import Settings, Task
from detectflow.jobs.kinds import kind_of
from detectflow.jobs.stores.redis import RedisJobStore

__all__ = ["Metrics", "serve_metrics"]

log = logging.getLogger("detectflow.api")

#: Request latency buckets (seconds): the API's own work is milliseconds.
LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)


class _RedisCollector:
    def __init__(self, store: RedisJobStore, settings: Settings) -> None:
        self.store = store
        self.settings = settings

    def collect(self):
        try:
            counts = self.store.job_counts()
            depth = {t: self.store.queue_depth(kind_of(t).queue) for t in Task}
            oldest = {t: self.store.oldest_waiting_seconds(kind_of(t).queue) for t in Task}
            hists = {t: self.store.inference_histogram(t.value) for t in Task}
            workers = {t: len(self.store.live_workers(t.value, self.settings.api_worker_stale_seconds)) for t in Task}
        except Exception:  # Redis down: /readyz says so; metrics of this process still work
            log.debug("redis metrics unavailable", exc_info=True)
            return
        jobs = CounterMetricFamily("detectflow_jobs", "Jobs by the state they reached.", labels=["state"])
        for state in ("created", "succeeded", "failed", "cancelled"):
            jobs.add_metric([state], counts.get(state, 0))
        yield jobs
        q = GaugeMetricFamily(
            "detectflow_queue_depth", "Unfinished messages of a task's queue (waiting, running, delayed).", labels=["task"]
        )
        age = GaugeMetricFamily(
            "detectflow_queue_oldest_age_seconds", "Age of a task's oldest job no worker has fetched yet.", labels=["task"]
        )
        w = GaugeMetricFamily("detectflow_workers", "Worker processes seen recently.", labels=["task"])
        inf = HistogramMetricFamily("detectflow_inference_seconds", "Model inference time per job.", labels=["task"])
        for t in Task:
            q.add_metric([t.value], depth[t])
            age.add_metric([t.value], oldest[t])
            w.add_metric([t.value], workers[t])
            buckets, total, _ = hists[t]
            inf.add_metric([t.value], buckets, sum_value=total)
        yield from (q, age, w, inf)


class Metrics:
    """One registry per app (so tests can build several apps in one process)."""

    def __init__(self, store: RedisJobStore | None = None, settings: Settings | None = None) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter(
            "detectflow_http_requests", "HTTP requests.", ["method", "route", "status"], registry=self.registry
        )
        self.latency = Histogram(
            "detectflow_http_request_duration_seconds",
            "HTTP request latency.",
            ["method", "route"],
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        if store is not None and settings is not None:
            self.registry.register(_RedisCollector(store, settings))

    def observe_request(self, method: str, route: str, status: int, seconds: float) -> None:
        self.requests.labels(method, route, str(status)).inc()
        self.latency.labels(method, route).observe(seconds)


def serve_metrics(metrics: Metrics, host: str, port: int):
    """Serve ``metrics`` at ``http://host:port/metrics`` from a thread (not on the API's port).

    Returns
    -------
    tuple
        The server (``shutdown()`` stops it) and its thread.
    """
    from prometheus_client import start_http_server

    return start_http_server(port, addr=host, registry=metrics.registry)
