"""Queue depth for status: real Redis when reachable, None when not."""

from __future__ import annotations

import socket
import time

import pytest
import redis

from detectflow.operator.queues import read_depths
from detectflow.operator.render import RedisTarget


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_queues_unreachable_redis_gives_none_quickly() -> None:
    target = RedisTarget("127.0.0.1", _closed_port(), 0, False)
    started = time.monotonic()
    assert read_depths(target, None, {"f": "x.msgs"}, timeout=0.5) == {"f": None}
    assert time.monotonic() - started < 2


@pytest.mark.redis
def test_queues_reads_hlen_of_msgs_hash(redis_server, prefix) -> None:
    client = redis.Redis.from_url(redis_server.url)
    client.hset(f"{prefix}:detect.face.msgs", mapping={"a": "1", "b": "2"})
    host, port = client.connection_pool.connection_kwargs["host"], client.connection_pool.connection_kwargs["port"]
    target = RedisTarget(host, port, client.connection_pool.connection_kwargs.get("db", 0), False)
    depths = read_depths(target, None, {"f": f"{prefix}:detect.face.msgs", "o": f"{prefix}:detect.object.msgs"})
    assert depths == {"f": 2, "o": 0}
