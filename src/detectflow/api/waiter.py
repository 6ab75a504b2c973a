"""Long polling: wait, without a thread, until a job reaches a final state."""

from __future__ import annotations

import redis.asyncio as aioredis

from detectflow.keys import KeyLayout

__all__ = ["JobWaiter"]


class JobWaiter:
    """Blocks on the job's "done" list, which the final state transition fills atomically."""

    def __init__(self, client: aioredis.Redis, prefix: str) -> None:
        self.client = client
        self.keys = KeyLayout(prefix)

    async def wait(self, job_id: str, timeout: float) -> bool:
        """True when the job finished within ``timeout`` seconds."""
        key = self.keys.done(job_id)
        # BLMOVE onto the same list: wakes this reader and leaves the token for any other one
        return await self.client.blmove(key, key, timeout, "RIGHT", "LEFT") is not None
