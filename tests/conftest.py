"""Fixtures shared by every tier."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from detectflow.cli.up import RedisServer
from detectflow.config import Settings
from tests.support.processes import TEST_ADMIN_KEY
from tests.support.s3 import S3Server


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    """A real redis-server on a free loopback port for the whole session."""
    with RedisServer(tmp_path_factory.mktemp("redis"), appendonly=False) as server:
        yield server


@pytest.fixture(scope="session")
def s3_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[S3Server]:
    """A real S3 server (versitygw, built by scripts/servers/build.sh) on a free loopback port for the session.

    It has one bucket (``s3_server.bucket``) and generated credentials (``access_key``, ``secret_key``,
    ``region``, ``endpoint``; ``env()`` gives them as the standard AWS variables).
    """
    with S3Server(tmp_path_factory.mktemp("s3")) as server:
        yield server


@pytest.fixture(scope="module")
def browser() -> Iterator[object]:
    """A headless Chromium (Debian's /usr/bin/chromium) driven by Playwright, for one test module.

    Module scope on purpose: while Playwright's sync API runs, the main thread counts as inside an
    event loop, so ``asyncio.run`` in later tests would fail. Keep browser tests in modules of their own.
    """
    from tests.support.browser import launch_chromium

    with launch_chromium() as b:
        yield b


@pytest.fixture
def prefix() -> str:
    """A key prefix of this test's own, so tests sharing the server never share queues."""
    return f"test{uuid.uuid4().hex[:10]}"


@pytest.fixture
def settings(redis_server: RedisServer, prefix: str, tmp_path: Path) -> Settings:
    return Settings(
        redis_url=redis_server.url,
        redis_prefix=prefix,
        state_dir=tmp_path / "state",
        webhook_secret="test-secret",
        webhook_allow_cidrs=["127.0.0.0/8"],  # the tests' receivers listen on loopback, as with `detectflow up`
        worker_dead_after_seconds=3,
        admin_key=TEST_ADMIN_KEY,
        api_metrics_port=0,
    )
