"""Long polling: many requests wait for their jobs to end on one shared Redis subscription per process."""

from __future__ import annotations

import asyncio
import contextlib
import logging

import redis.asyncio as aioredis
from redis.exceptions import RedisError

from detectflow.jobs.records import JobStatus
from detectflow.keys import KeyLayout

__all__ = ["DoneBoard", "JobWaiter"]

log = logging.getLogger(__name__)

#: Longest the subscriber waits for a message before looking at its own state again (seconds).
POLL_SECONDS = 1.0
#: First and longest delay before the subscriber reconnects after an error (seconds).
RECONNECT_MIN_SECONDS, RECONNECT_MAX_SECONDS = 0.1, 5.0


class DoneBoard:
    """Which jobs this process waits for, and the one event per job that wakes all of its readers (pure asyncio).

    A reader ``enter``s before it checks whether the job has ended, so an end announced between the
    check and the wait still wakes it; ``leave`` forgets the job once its last reader is gone.
    """

    def __init__(self) -> None:
        self._events: dict[str, asyncio.Event] = {}
        self._readers: dict[str, int] = {}

    def enter(self, job_id: str) -> asyncio.Event:
        """Register one more reader of ``job_id``; returns the event set when the job ends."""
        self._readers[job_id] = self._readers.get(job_id, 0) + 1
        return self._events.setdefault(job_id, asyncio.Event())

    def leave(self, job_id: str) -> None:
        """One reader of ``job_id`` is done (woken or timed out)."""
        left = self._readers.get(job_id, 0) - 1
        if left > 0:
            self._readers[job_id] = left
        else:
            self._readers.pop(job_id, None)
            self._events.pop(job_id, None)

    def announce(self, job_id: str) -> bool:
        """``job_id`` has ended: wake its readers; False when nobody here waits for it."""
        event = self._events.get(job_id)
        if event is None:
            return False
        event.set()
        return True

    def waited(self) -> list[str]:
        """The jobs someone is waiting for."""
        return list(self._events)

    def __len__(self) -> int:
        return sum(self._readers.values())


class JobWaiter:
    """Waits for jobs to end without one Redis connection per waiting request.

    The final transition (a Lua script) publishes the job's id on ``<prefix>:jobs:done``. One
    subscriber task per process holds the only long-lived connection and sets the in-process
    event of each announced job (:class:`DoneBoard`); a waiting request registers first, then
    checks the job's status with a short read from the shared pool, then awaits its event, so a job
    that ended just before the wait began is seen. After the subscription is (re)established the
    subscriber re-reads the status of every waited job, so an end announced while it was
    disconnected is not missed.
    """

    def __init__(self, client: aioredis.Redis, prefix: str) -> None:
        self.client = client
        self.keys = KeyLayout(prefix)
        self.board = DoneBoard()
        self._subscribed = asyncio.Event()
        self._task: asyncio.Task | None = None

    async def wait(self, job_id: str, timeout: float) -> bool:
        """True when the job has ended (or no longer exists) within ``timeout`` seconds."""
        event = self.board.enter(job_id)
        try:
            async with asyncio.timeout(timeout):
                self._start()
                await self._subscribed.wait()
                if await self._has_ended(job_id):
                    return True
                await event.wait()
                return True
        except TimeoutError:
            return False
        finally:
            self.board.leave(job_id)

    async def aclose(self) -> None:
        """Stop the subscriber (the app's shutdown)."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    # --- internals --------------------------------------------------------------------
    def _start(self) -> None:
        if self._task is None or self._task.done():
            self._task = asyncio.create_task(self._subscribe_forever(), name="detectflow-job-waiter")

    async def _has_ended(self, job_id: str) -> bool:
        status = await self.client.hget(self.keys.job(job_id), "status")
        return status is None or JobStatus(status.decode()).is_final

    async def _recheck(self) -> None:
        """Wake the readers of every waited job that has ended (after a (re)subscription)."""
        waited = self.board.waited()
        if not waited:
            return
        async with self.client.pipeline(transaction=False) as pipe:
            for job_id in waited:
                pipe.hget(self.keys.job(job_id), "status")
            statuses = await pipe.execute()
        for job_id, status in zip(waited, statuses, strict=True):
            if status is None or JobStatus(status.decode()).is_final:
                self.board.announce(job_id)

    async def _subscribe_forever(self) -> None:
        delay = RECONNECT_MIN_SECONDS
        channel = self.keys.done_channel()
        while True:
            pubsub = self.client.pubsub()
            try:
                await pubsub.subscribe(channel)
                while True:
                    message = await pubsub.get_message(timeout=POLL_SECONDS)
                    if message is None:
                        continue
                    if message["type"] == "subscribe":
                        self._subscribed.set()
                        await self._recheck()
                        delay = RECONNECT_MIN_SECONDS
                    elif message["type"] == "message":
                        self.board.announce(message["data"].decode())
            except (RedisError, OSError) as exc:
                self._subscribed.clear()
                log.warning("long-poll subscription lost; reconnecting in %.1f s: %s", delay, exc)
                await asyncio.sleep(delay)
                delay = min(delay * 2, RECONNECT_MAX_SECONDS)
            finally:
                self._subscribed.clear()
                with contextlib.suppress(RedisError, OSError):
                    await pubsub.aclose()
