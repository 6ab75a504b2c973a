"""Integration tier: the real API app, real redis-server, real worker processes with the real model."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest
from fastapi.testclient import TestClient
from pydantic import SecretStr

from detectflow.api.app import create_app
from detectflow.blobs import BlobStore, open_blob_store
from detectflow.blobs.factory import storage_dir
from detectflow.config import Settings
from detectflow.jobs.stores.redis import RedisJobStore, connect
from tests.support.processes import AUTH, Proc, cli_env, start_worker, wait_for

pytestmark = pytest.mark.redis


#: The blob stores the job-path tests run against, each once (``each_storage``).
STORAGES = ("filesystem", pytest.param("s3", marks=pytest.mark.s3))


@pytest.fixture
def storage() -> str:
    """The blob store of this test's API and workers; modules that run against each override it with ``each_storage``."""
    return "filesystem"


@pytest.fixture(params=STORAGES)
def each_storage(request: pytest.FixtureRequest) -> str:
    """Every blob store in turn: a module's ``storage`` fixture returns it to run its tests once per backend."""
    return request.param


@pytest.fixture
def settings(settings: Settings, storage: str, request: pytest.FixtureRequest) -> Settings:
    """The shared settings with this test's blob store: files under its tmp dir, or its own prefix in the S3 server."""
    if storage == "s3":
        s3 = request.getfixturevalue("s3_server")
        return settings.model_copy(
            update={
                "storage": "s3",
                "storage_s3_bucket": s3.bucket,
                "storage_s3_prefix": f"{settings.redis_prefix}/",
                "storage_s3_endpoint": s3.endpoint,
                "storage_s3_region": s3.region,
                "storage_s3_addressing_style": "path",
                "storage_s3_access_key_id": SecretStr(s3.access_key),
                "storage_s3_secret_access_key": SecretStr(s3.secret_key),
            }
        )
    return settings.model_copy(update={"storage": storage, "storage_dir": storage_dir(settings)})


@pytest.fixture
def blobs(settings: Settings, store: RedisJobStore) -> Iterator[BlobStore]:
    """The test's blob store, as its API and workers see it."""
    opened = open_blob_store(settings, store.client)
    yield opened
    opened.close()


def storage_env(settings: Settings) -> dict[str, str]:
    """The ``DETECTFLOW_STORAGE*`` settings as ``cli_env`` keywords, for worker and API processes."""
    env: dict[str, object] = {"storage": settings.storage}
    for name in Settings.model_fields:
        value = getattr(settings, name)
        if name.startswith("storage_") and value not in (None, ""):
            env[name] = value.get_secret_value() if isinstance(value, SecretStr) else value
    return {k: str(v) for k, v in env.items()}


@pytest.fixture
def store(settings: Settings) -> RedisJobStore:
    return RedisJobStore(connect(settings.redis_url), settings.redis_prefix, settings.job_ttl_seconds)


@pytest.fixture
def make_client(settings: Settings) -> Iterator[Callable[..., TestClient]]:
    """Build an API client, optionally with settings overrides."""
    clients: list[TestClient] = []

    def make(*, headers: dict[str, str] | None = None, **overrides: object) -> TestClient:
        """A client of an app with ``overrides`` of the settings, sending the admin key unless ``headers`` say otherwise."""
        client = TestClient(
            create_app(settings.model_copy(update=overrides)),
            raise_server_exceptions=False,
            headers=AUTH if headers is None else headers,
        )
        clients.append(client)
        return client.__enter__()  # one event loop for the client's life, lifespan included

    yield make
    for c in clients:
        c.__exit__(None, None, None)


@pytest.fixture
def client(make_client) -> TestClient:
    return make_client()


@pytest.fixture
def worker_env(settings: Settings) -> dict[str, str]:
    return cli_env(
        redis_url=settings.redis_url,
        redis_prefix=settings.redis_prefix,
        model_dir=settings.model_dir,  # DETECTFLOW_MODEL_DIR reaches the workers (cli_env drops DETECTFLOW_*)
        webhook_secret=settings.webhook_secret.get_secret_value(),
        webhook_allow_cidrs=",".join(settings.webhook_allow_cidrs),
        worker_dead_after_seconds=settings.worker_dead_after_seconds,
        webhook_backoff_seconds=0.2,
        worker_min_backoff_ms=100,
        worker_max_backoff_ms=500,
        **storage_env(settings),
    )


@pytest.fixture
def run_worker(worker_env, store: RedisJobStore, tmp_path: Path) -> Iterator[Callable[..., Proc]]:
    """Start real `detectflow worker` processes; waits until each has loaded and warmed its model."""
    procs: list[Proc] = []

    def run(task: str = "face", **env: object) -> Proc:
        full = {**worker_env, **{f"DETECTFLOW_{k.upper()}": str(v) for k, v in env.items()}}
        before = {w["id"] for w in store.live_workers(task, 60)}
        proc = start_worker(
            full,
            tmp_path / f"worker-{task}-{len(procs)}.log",
            task,
            wait_ready=lambda: {w["id"] for w in store.live_workers(task, 60)} - before,
        )
        procs.append(proc)
        return proc

    yield run
    for p in procs:
        p.stop()


def submit(client: TestClient | httpx.Client, data: bytes, task: str = "face", name: str = "img", **kw) -> httpx.Response:
    """POST a job; the result cache is off unless ``cache="true"`` is given (tests send one photo many times)."""
    headers = kw.pop("headers", {})
    kw.setdefault("cache", "false")
    return client.post("/v1/jobs", files={"file": (name, data)}, data={"task": task, **kw}, headers=headers)


def wait_job(client, job_id: str, timeout: float = 60, statuses=("succeeded", "failed", "cancelled")) -> dict:
    return wait_for(
        lambda: (j := client.get(f"/v1/jobs/{job_id}").json()) and j.get("status") in statuses and j,
        timeout,
        what=f"job {job_id} to reach {statuses}",
    )
