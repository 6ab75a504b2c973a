"""Queue depths read from Redis for status (best effort: None when unreachable)."""

from __future__ import annotations

import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from detectflow.operator.render import RedisTarget

__all__ = ["DEFAULT_REDIS_TIMEOUT_SECONDS", "read_depths"]

#: Connect and read timeout for the status probe (seconds); status never waits long on Redis.
DEFAULT_REDIS_TIMEOUT_SECONDS = 1.0


def read_depths(
    target: RedisTarget,
    password: str | None,
    keys: dict[str, tuple[str, ...]],
    timeout: float = DEFAULT_REDIS_TIMEOUT_SECONDS,
) -> dict[str, int | None]:
    """Each worker's queue depth (the HLENs of its depth keys added up), or None for all when Redis is unreachable.

    Parameters
    ----------
    target
        Where Redis is.
    password
        Redis password, if any.
    keys
        Worker name -> its queue's depth keys (:meth:`detectflow.keys.KeyLayout.depth_keys`).
    timeout
        Socket timeout in seconds.

    Returns
    -------
    dict
        Worker name -> depth or None.
    """
    client = redis.Redis(
        host=target.host,
        port=target.port,
        db=target.database,
        username=target.username,
        password=password,
        ssl=target.tls,
        socket_timeout=timeout,
        socket_connect_timeout=timeout,
        retry=Retry(NoBackoff(), 0),  # one try: the next resync asks again
    )
    try:
        pipe = client.pipeline(transaction=False)
        names = sorted(keys)
        for name in names:
            for key in keys[name]:
                pipe.hlen(key)
        lengths = iter(pipe.execute())
        return {name: sum(int(next(lengths)) for _ in keys[name]) for name in names}
    except (redis.RedisError, OSError):
        return {name: None for name in keys}
    finally:
        client.close()
