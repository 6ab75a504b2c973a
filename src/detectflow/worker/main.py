"""The worker process: what `dramatiq detectflow.worker.main` imports (one kind of job per process)."""

from __future__ import annotations

from dramatiq.common import dq_name
from dramatiq.middleware import CurrentMessage

from detectflow.config import get_settings
from detectflow.jobs.kinds import kind_of
from detectflow.jobs.stores.redis import RedisJobStore
from detectflow.logs import setup_logging
from detectflow.worker.actors import declare_actors, declare_segment_actor
from detectflow.worker.broker import make_broker
from detectflow.worker.context import WorkerContext
from detectflow.worker.metrics import WorkerMetrics
from detectflow.worker.middleware import JobLifecycle, WorkerPresence


def _load_detector(task, settings):
    from detectflow.detectors.registry import load_detector

    return load_detector(task, settings)


settings = get_settings()
setup_logging(settings.log_level, settings.log_format)
broker = make_broker(settings)
kind = kind_of(settings.worker_task)
store = RedisJobStore(broker.client, settings.redis_prefix, settings.job_ttl_seconds)
ctx = WorkerContext(settings=settings, store=store, kind=kind)
_, webhook_actor = declare_actors(broker, ctx)
declare_segment_actor(broker, ctx)
broker.add_middleware(CurrentMessage())
broker.add_middleware(JobLifecycle(ctx, webhook_actor))
broker.add_middleware(WorkerPresence(ctx, _load_detector, [kind.queue, dq_name(kind.queue)]))
broker.add_middleware(
    WorkerMetrics(kind.task.value, kind.actor_name, settings.worker_metrics_host, settings.worker_metrics_port)
)
