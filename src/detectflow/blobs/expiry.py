"""Blob expiry: a Redis sorted set of blob name -> expiry time that the sweeper drains (S3 servers need no lifecycle rules)."""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable

import redis
import redis.asyncio as aioredis

from detectflow.blobs.base import BlobStore
from detectflow.keys import KeyLayout

__all__ = ["blob_expires_at", "BlobExpiry", "AsyncBlobExpiry", "sweep", "DEFAULT_SWEEP_BATCH"]

log = logging.getLogger("detectflow.blobs")

#: Blobs claimed per round trip by the sweeper (blobs).
DEFAULT_SWEEP_BATCH = 500

# KEYS[1] the expiry zset; ARGV[1] the expiry time (s), ARGV[2..] names. A name keeps the latest of
# its expiries: content-addressed blobs are shared by every job with the same bytes, and live as
# long as the longest-lived of them (ZADD GT without needing Redis 6.2).
_MARK = """
local at = tonumber(ARGV[1])
for i = 2, #ARGV do
  local cur = redis.call('ZSCORE', KEYS[1], ARGV[i])
  if not cur or tonumber(cur) < at then redis.call('ZADD', KEYS[1], at, ARGV[i]) end
end
return #ARGV - 1
"""

# KEYS[1] the expiry zset; ARGV[1] now (s), ARGV[2] most names. Takes the due names out of the set
# and returns them: concurrent sweepers (API replicas, the CLI) never claim one name twice.
_CLAIM = """
local due = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[1], 'LIMIT', 0, tonumber(ARGV[2]))
if #due > 0 then redis.call('ZREM', KEYS[1], unpack(due)) end
return due
"""


def blob_expires_at(ttl_seconds: float, since: float) -> float:
    """When the blobs of a job whose record expires ``ttl_seconds`` after ``since`` (epoch s) expire.

    The one place blob expiry follows the record's: call it wherever the record's TTL is set
    (at submission; at the job's end if the TTL counts from there) and mark the job's blobs with it.
    """
    return since + ttl_seconds


class BlobExpiry:
    """The expiry set on a synchronous Redis client (workers, the sweeper, the CLI)."""

    def __init__(self, client: redis.Redis, prefix: str) -> None:
        self.client = client
        self.key = KeyLayout(prefix).blob_expiry()
        self._mark = client.register_script(_MARK)
        self._claim = client.register_script(_CLAIM)

    def mark(self, names: Iterable[str], at: float) -> None:
        """Make ``names`` expire at ``at`` (epoch s) unless they already expire later."""
        names = list(names)
        if names:
            self._mark(keys=[self.key], args=[f"{at:.3f}", *names])

    def expiry(self, name: str) -> float | None:
        """When ``name`` expires (epoch s), or None if it is not tracked."""
        score = self.client.zscore(self.key, name)
        return None if score is None else float(score)

    def claim_due(self, now: float, limit: int = DEFAULT_SWEEP_BATCH) -> list[str]:
        """Take up to ``limit`` names due by ``now`` out of the set."""
        return [n.decode() for n in self._claim(keys=[self.key], args=[f"{now:.3f}", limit])]


class AsyncBlobExpiry:
    """The expiry set on an asyncio Redis client (the API's submissions)."""

    def __init__(self, client: aioredis.Redis, prefix: str) -> None:
        self.key = KeyLayout(prefix).blob_expiry()
        self._mark = client.register_script(_MARK)

    async def mark(self, names: Iterable[str], at: float) -> None:
        """Make ``names`` expire at ``at`` (epoch s) unless they already expire later."""
        names = list(names)
        if names:
            await self._mark(keys=[self.key], args=[f"{at:.3f}", *names])


def sweep(store: BlobStore, expiry: BlobExpiry, now: float | None = None, batch: int = DEFAULT_SWEEP_BATCH) -> int:
    """Delete every blob due by ``now`` (default: the current time); returns how many were deleted.

    A blob whose deletion fails goes back into the set, due at once, for the next sweep.
    """
    now = time.time() if now is None else now
    deleted = 0
    while names := expiry.claim_due(now, batch):
        for name in names:
            try:
                store.delete(name)
                deleted += 1
            except Exception as exc:  # an S3 outage must not lose track of the blob
                log.warning("could not delete blob %s (%s); retried at the next sweep", name, exc)
                expiry.mark([name], now)
        if len(names) < batch:
            break
    return deleted


async def sweep_forever(store: BlobStore, expiry: BlobExpiry, interval_seconds: float) -> None:
    """Sweep every ``interval_seconds`` until cancelled (an API process's background task); errors are logged."""
    import asyncio

    from anyio import to_thread

    while True:
        await asyncio.sleep(interval_seconds)
        try:
            deleted = await to_thread.run_sync(sweep, store, expiry)
            if deleted:
                log.info("swept %d expired blobs", deleted)
        except Exception as exc:  # Redis or the bucket down: try again next time
            log.warning("blob sweep failed: %s", exc)
