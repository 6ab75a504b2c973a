"""The worker process: what `dramatiq detectflow.worker.main` imports (one kind of job per process)."""

from __future__ import annotations

from dramatiq.common import dq_name
from dramatiq.middleware import CurrentMessage

from detectflow.blobs import open_blob_store
from detectflow.config import get_settings
from detectflow.jobs.kinds import kinds_of_pool
from detectflow.jobs.stores.redis import RedisJobStore
from detectflow.blobs.expiry import BlobExpiry
from detectflow.logs import setup_logging
from detectflow.worker.actors import declare_actors, declare_segment_actor
from detectflow.worker.broker import make_broker
from detectflow.worker.context import WorkerContext
from detectflow.worker.deadline import HardDeadline
from detectflow.worker.metrics import WorkerMetrics
from detectflow.worker.middleware import JobLifecycle, WorkerPresence
from detectflow.worker.recycle import Recycler


def _load_detector(pool, settings):
    from detectflow.config import Task

    if settings.worker_detector_factory:  # e.g. the fault-injecting detector of the poison and hang tests
        import importlib

        module, _, name = settings.worker_detector_factory.partition(":")
        return getattr(importlib.import_module(module), name)(pool, settings)
    from detectflow.detectors.registry import load_detector

    return load_detector(Task.object if pool == Task.object else Task.face, settings)  # recognition: faces


def _load_embedder(settings):
    from detectflow.detectors.registry import load_embedder

    return load_embedder(settings)


settings = get_settings()
setup_logging(settings.log_level, settings.log_format)
broker = make_broker(settings)
kind = kinds_of_pool(settings.worker_task)[0]  # the pool's kinds share its queue and actor
store = RedisJobStore(broker.client, settings.redis_prefix, settings.job_ttl_seconds, settings.result_cache_ttl_seconds)
ctx = WorkerContext(
    settings=settings, store=store, kind=kind, blobs=open_blob_store(settings, broker.client),
    expiry=BlobExpiry(broker.client, settings.redis_prefix),
)
if ctx.needs_embedder:
    from detectflow.galleries.ann import indexer_for
    from detectflow.galleries.cache import GalleryCache
    from detectflow.galleries.store import GalleryStore

    ctx.galleries = GalleryCache(
        GalleryStore(broker.client, settings.redis_prefix), indexer_for(settings.recognition_ann_min_faces)
    )
_, webhook_actor = declare_actors(broker, ctx)
declare_segment_actor(broker, ctx)
broker.add_middleware(CurrentMessage())
broker.add_middleware(JobLifecycle(ctx, webhook_actor))
broker.add_middleware(WorkerPresence(ctx, _load_detector, [kind.queue, dq_name(kind.queue)], _load_embedder))
broker.add_middleware(
    WorkerMetrics(kind.served_by.value, kind.actor_name, settings.worker_metrics_host, settings.worker_metrics_port)
)
broker.add_middleware(HardDeadline(ctx))
broker.add_middleware(Recycler(ctx))
