"""Unit tests of the Redis client options: every client has timeouts; the API's pools are bounded."""

from __future__ import annotations

import redis
import redis.asyncio as aioredis

from detectflow.config import Settings
from detectflow.jobs.stores.redis import client_options, connect, connect_async


def test_client_options_have_socket_and_connect_timeouts():
    s = Settings(redis_socket_timeout_seconds=4, redis_connect_timeout_seconds=2)
    options = client_options(s)
    assert (options["socket_timeout"], options["socket_connect_timeout"]) == (4, 2)
    assert "max_connections" not in options


def test_bounded_clients_get_a_blocking_pool_with_the_timeouts():
    s = Settings(redis_socket_timeout_seconds=4, redis_connect_timeout_seconds=2)
    sync = connect("redis://127.0.0.1:1/0", **client_options(s, max_connections=8))
    aio = connect_async("redis://127.0.0.1:1/0", "pw", **client_options(s, max_connections=8))
    assert isinstance(sync.connection_pool, redis.BlockingConnectionPool)
    assert isinstance(aio.connection_pool, aioredis.BlockingConnectionPool)
    for pool in (sync.connection_pool, aio.connection_pool):
        assert pool.max_connections == 8 and pool.timeout == 4
        assert pool.connection_kwargs["socket_timeout"] == 4
        assert pool.connection_kwargs["socket_connect_timeout"] == 2
    assert aio.connection_pool.connection_kwargs["password"] == "pw"
    assert sync.auto_close_connection_pool and aio.auto_close_connection_pool
