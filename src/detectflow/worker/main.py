"""The worker process: what `dramatiq detectflow.worker.main` imports (one task per process)."""

from __future__ import annotations

from dramatiq.middleware import CurrentMessage

from detectflow.config import get_settings
from detectflow.logs import setup_logging
from detectflow.jobs.store import RedisJobStore
from detectflow.worker.actors import declare_actors
from detectflow.worker.broker import make_broker
from detectflow.worker.context import WorkerContext
from detectflow.worker.middleware import JobLifecycle, WorkerPresence


def _load_detector(task, settings):
    from detectflow.detectors.registry import load_detector

    return load_detector(task, settings)


settings = get_settings()
setup_logging(settings.log_level, settings.log_format)
broker = make_broker(settings)
ctx = WorkerContext(settings=settings, store=RedisJobStore(broker.client, settings.redis_prefix, settings.job_ttl_seconds))
task = settings.worker_task
_, webhook_actor = declare_actors(broker, ctx, task)
broker.add_middleware(CurrentMessage())
broker.add_middleware(JobLifecycle(ctx, on_finished=lambda t, job_id: webhook_actor.send(job_id)))
broker.add_middleware(WorkerPresence(ctx, _load_detector, [task.queue_name, f"{task.queue_name}.DQ"]))


