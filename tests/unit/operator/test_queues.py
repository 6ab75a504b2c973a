"""Queue depth for status: real Redis when reachable, None when not."""

from __future__ import annotations

import socket
import time

import pytest
import redis

from detectflow.keys import KeyLayout
from detectflow.operator.queues import read_depths
from detectflow.operator.render import RedisTarget


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_queues_unreachable_redis_gives_none_quickly() -> None:
    target = RedisTarget("127.0.0.1", _closed_port(), 0, False)
    started = time.monotonic()
    assert read_depths(target, None, {"f": ("x.msgs", "x.DQ.msgs")}, timeout=0.5) == {"f": None}
    assert time.monotonic() - started < 2


@pytest.mark.redis
def test_queues_depth_counts_unfinished_and_delayed_work(redis_server, prefix) -> None:
    client = redis.Redis.from_url(redis_server.url)
    keys = KeyLayout(prefix)
    client.hset(keys.queue_messages("detect.face"), mapping={"a": "1", "b": "2"})
    client.hset(keys.delayed_messages("detect.face"), mapping={"c": "3"})
    host, port = client.connection_pool.connection_kwargs["host"], client.connection_pool.connection_kwargs["port"]
    target = RedisTarget(host, port, client.connection_pool.connection_kwargs.get("db", 0), False)
    depths = read_depths(target, None, {"f": keys.depth_keys("detect.face"), "o": keys.depth_keys("detect.object")})
    assert depths == {"f": 3, "o": 0}
