"""Long polling: wait, without a thread, until a job reaches a final state."""

from __future__ import annotations

import redis.asyncio as aioredis

from detectflow.jobs.store import Keys

__all__ = ["JobWaiter"]


class JobWaiter:
    """Blocks on the job's "done" list, which the final state transition fills atomically."""

    def __init__(self, client: aioredis.Redis, prefix: str) -> None:
        self.client = client
        self.keys = Keys(prefix)

    async def wait(self, job_id: str, timeout: float) -> bool:
        """True when the job finished within ``timeout`` seconds."""
        key = self.keys.done(job_id)
        got = await self.client.blpop([key], timeout=timeout)
        if got is None:
            return False
        # put the token back for any other reader waiting on the same job
        async with self.client.pipeline(transaction=True) as pipe:
            await pipe.rpush(key, 1).expire(key, 300).execute()
        return True
