"""The long-poll waiter on a real Redis: one subscription per process, every reader woken, no end missed."""

from __future__ import annotations

import asyncio
import time

import pytest

from detectflow.api.waiter import JobWaiter
from detectflow.config import Settings
from detectflow.jobs.errors import ErrorCode
from detectflow.jobs.stores.redis import RedisJobStore, client_options, connect_async

pytestmark = pytest.mark.redis


def _queued(store: RedisJobStore, job_id: str) -> None:
    store.client.hset(store.keys.job(job_id), mapping={"status": "queued", "task": "face"})


def _end(store: RedisJobStore, job_id: str) -> None:
    assert store.mark_failed(job_id, "face", ErrorCode.worker_error, "ended by the test")[0]


def _pubsub_clients(store: RedisJobStore) -> int:
    return sum(1 for c in store.client.client_list() if int(c.get("sub", 0)) > 0)


async def _with_waiter(settings: Settings, body):
    client = connect_async(settings.redis_url, **client_options(settings, max_connections=8))
    waiter = JobWaiter(client, settings.redis_prefix)
    try:
        return await body(waiter)
    finally:
        await waiter.aclose()
        await client.aclose()


def test_waiter_wakes_every_reader_on_one_subscription(settings: Settings, store: RedisJobStore):
    _queued(store, "j1")
    _queued(store, "j2")

    async def body(waiter: JobWaiter):
        readers = [asyncio.create_task(waiter.wait("j1", 10)) for _ in range(200)]
        other = asyncio.create_task(waiter.wait("j2", 1))
        await asyncio.sleep(0.5)
        assert not any(r.done() for r in readers)
        # one subscriber connection for all 201 readers, and a pool of at most 8
        assert _pubsub_clients(store) == 1
        t0 = time.monotonic()
        await asyncio.to_thread(_end, store, "j1")
        assert await asyncio.wait_for(asyncio.gather(*readers), 2) == [True] * 200
        woke = time.monotonic() - t0
        assert await other is False  # another job's end wakes nobody else
        return woke

    assert asyncio.run(_with_waiter(settings, body)) < 0.5


def test_waiter_sees_a_job_that_ended_just_before_the_wait(settings: Settings, store: RedisJobStore):
    _queued(store, "j1")
    _end(store, "j1")  # the announcement is gone: only the status says it

    async def body(waiter: JobWaiter):
        t0 = time.monotonic()
        assert await waiter.wait("j1", 5) is True
        assert await waiter.wait("missing", 5) is True  # expired or unknown: nothing to wait for
        return time.monotonic() - t0

    assert asyncio.run(_with_waiter(settings, body)) < 1


def test_waiter_times_out_on_a_job_that_does_not_end(settings: Settings, store: RedisJobStore):
    _queued(store, "j1")

    async def body(waiter: JobWaiter):
        t0 = time.monotonic()
        assert await waiter.wait("j1", 0.5) is False
        assert waiter.board.waited() == []  # nothing left behind
        return time.monotonic() - t0

    assert 0.4 < asyncio.run(_with_waiter(settings, body)) < 2


def test_waiter_misses_no_end_while_its_subscription_is_down(settings: Settings, store: RedisJobStore):
    _queued(store, "j1")

    async def body(waiter: JobWaiter):
        readers = [asyncio.create_task(waiter.wait("j1", 15)) for _ in range(5)]
        await asyncio.sleep(0.5)
        # the subscriber's connection dies, and the job ends before it is back
        store.client.client_kill_filter(_type="pubsub")
        _end(store, "j1")
        return await asyncio.wait_for(asyncio.gather(*readers), 10)

    assert asyncio.run(_with_waiter(settings, body)) == [True] * 5
