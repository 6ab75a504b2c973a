"""create_app: the FastAPI application of API v1."""

from __future__ import annotations

import asyncio
import logging
from contextlib import asynccontextmanager

import redis

from fastapi import FastAPI

import detectflow
from detectflow.api.access import AccessLogMiddleware
from detectflow.api.console import install_console
from detectflow.api.errors import install_error_handlers
from detectflow.api.metrics import Metrics, serve_metrics
from detectflow.api.middleware import RequestContextMiddleware
from detectflow.api.openapi import install_openapi, operation_id
from detectflow.api.routes import galleries, health, jobs, keys, uploads, video
from detectflow.auth.store import KeyStore
from detectflow.blobs import AsyncBlobExpiry, AsyncBlobs, BlobExpiry, open_blob_store
from detectflow.blobs.expiry import sweep_forever
from detectflow.api.waiter import JobWaiter
from detectflow.config import Settings, get_settings
from detectflow.galleries.ann import indexer_for
from detectflow.galleries.cache import GalleryCache
from detectflow.galleries.service import GalleryService
from detectflow.galleries.store import GalleryStore
from detectflow.jobs.service import Enqueuer, JobService
from detectflow.jobs.uploads import UploadService
from detectflow.jobs.stores.redis import AsyncRedisJobStore, RedisJobStore, client_options, connect_async

__all__ = ["create_app"]

log = logging.getLogger("detectflow.api")

#: Seconds between tries to store the bootstrap admin key while Redis is unreachable.
BOOTSTRAP_RETRY_SECONDS = 2.0


async def _store_admin_key(keys: KeyStore, settings: Settings) -> bool:
    try:
        await keys.ensure(settings.admin_key.get_secret_value(), settings.admin_tenant, "admin")
        return True
    except redis.RedisError as exc:
        log.warning("cannot store the admin key yet (%s); retrying", exc)
        return False


async def _keep_storing_admin_key(keys: KeyStore, settings: Settings) -> None:
    """While Redis is down at start, keep trying (the API answers 503 meanwhile)."""
    while not await _store_admin_key(keys, settings):
        await asyncio.sleep(BOOTSTRAP_RETRY_SECONDS)


def create_app(settings: Settings | None = None, enqueuer: Enqueuer | None = None) -> FastAPI:
    """Build the app; ``enqueuer`` defaults to Dramatiq on the settings' Redis."""
    settings = settings or get_settings()
    from detectflow.worker.broker import DramatiqEnqueuer, make_broker

    # both pools are bounded: a burst of requests (or of long polls) waits for a connection
    # instead of opening one each
    broker = make_broker(settings, set_global=False, max_connections=settings.redis_max_connections)
    password = settings.redis_password.get_secret_value() if settings.redis_password else None
    aclient = connect_async(
        settings.redis_url, password, **client_options(settings, max_connections=settings.redis_max_connections)
    )
    waiter = JobWaiter(aclient, settings.redis_prefix)
    # the API's own work runs on the event loop (asyncio Redis); readiness and metrics read
    # through the broker's synchronous client in the thread pool
    observer = RedisJobStore(broker.client, settings.redis_prefix, settings.job_ttl_seconds)
    # inputs and annotated images: the configured blob store, swept of expired blobs by each API process
    blob_store = open_blob_store(settings, broker.client)

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        bootstrap = None
        if settings.admin_key is not None and settings.auth == "enabled":
            if not await _store_admin_key(app.state.keys, settings):
                bootstrap = asyncio.create_task(_keep_storing_admin_key(app.state.keys, settings))
        server = None
        if settings.api_metrics_port:
            server, _ = serve_metrics(app.state.metrics, settings.api_host, settings.api_metrics_port)
        sweeper = None
        if settings.storage_sweep_interval_seconds > 0:
            expiry = BlobExpiry(broker.client, settings.redis_prefix)
            sweeper = asyncio.create_task(sweep_forever(blob_store, expiry, settings.storage_sweep_interval_seconds))
        yield
        if bootstrap is not None:
            bootstrap.cancel()
        if sweeper is not None:
            sweeper.cancel()
        if server is not None:
            server.shutdown()
        await waiter.aclose()
        await aclient.aclose()
        blob_store.close()
        broker.close()

    docs = settings.api_docs
    app = FastAPI(
        lifespan=lifespan,
        title="detectflow",
        version=detectflow.__version__,
        description="Face and object detection as asynchronous jobs. Submit an image, poll the job. "
        "Every request but /healthz, /readyz and these docs needs an API key: `Authorization: Bearer <key>`.",
        generate_unique_id_function=operation_id,
        docs_url="/docs" if docs else None,
        redoc_url="/redoc" if docs else None,
        openapi_url="/openapi.json" if docs else None,
    )
    app.state.settings = settings
    app.state.observer = observer
    app.state.metrics = Metrics(observer, settings)
    store = AsyncRedisJobStore(aclient, settings.redis_prefix, settings.job_ttl_seconds)
    blobs = AsyncBlobs(blob_store)
    app.state.blobs = blobs
    blob_expiry = AsyncBlobExpiry(aclient, settings.redis_prefix)
    app.state.jobs = JobService(store, enqueuer or DramatiqEnqueuer(broker), settings, blobs, blob_expiry)
    app.state.uploads = UploadService(aclient, blobs, blob_expiry, settings)
    app.state.waiter = waiter
    app.state.keys = KeyStore(aclient, settings.redis_prefix)
    gallery_store = GalleryStore(broker.client, settings.redis_prefix)
    cache = GalleryCache(gallery_store, indexer_for(settings.recognition_ann_min_faces))
    app.state.galleries = GalleryService(gallery_store, cache, settings)
    install_error_handlers(app)
    install_openapi(app)
    app.include_router(jobs.router)
    app.include_router(video.router)
    app.include_router(galleries.router)
    app.include_router(keys.router)
    app.include_router(uploads.router)
    app.include_router(health.router)
    if settings.api_access_log:  # inside the request context, so its lines carry the request id
        app.add_middleware(AccessLogMiddleware)
    install_console(app)
    app.add_middleware(
        RequestContextMiddleware,
        metrics=app.state.metrics,
        max_body_bytes=settings.api_max_upload_bytes,
        body_timeout=settings.api_body_timeout_seconds,
        large_bodies={"/v1/uploads/": (settings.storage_upload_max_bytes, float(settings.storage_upload_seconds))},
    )
    return app
