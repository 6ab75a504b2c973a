"""Jobs in Redis: the synchronous store of workers and observers, the asyncio store of the API (one script set)."""

from __future__ import annotations

import json
import time
from collections.abc import Iterable
from datetime import datetime
from typing import Any

import redis
import redis.asyncio as aioredis

from detectflow.config import Settings
from detectflow.jobs.errors import ErrorCode
from detectflow.jobs.records import JobError, JobRecord, JobStatus, WebhookState, utcnow
from detectflow.jobs.store import Admission, Cursor, JobFilter, QueuedMessage, Submitted, created_us
from detectflow.keys import KeyLayout

__all__ = ["AsyncRedisJobStore", "RedisJobStore", "client_options", "connect", "connect_async"]

#: How often an idle pooled connection is pinged before reuse (seconds).
HEALTH_CHECK_SECONDS = 30

_JSON_FIELDS = ("error", "result", "webhook", "video_options")

# Conditional transition: KEYS[1] job hash, KEYS[2] per-state counters; ARGV = [allowed "a,b",
# new_status, incr_attempts 0|1, final 0|1, done channel, job id, field, value, ...]. A final
# transition publishes the job id on the done channel (long-polling readers). Returns
# {1, old_status, request_id, has_webhook} when applied, {0, old_status or false} otherwise.
_TRANSITION = """
local cur = redis.call('HGET', KEYS[1], 'status')
if not cur then return {0, false} end
local ok = false
for s in string.gmatch(ARGV[1], '[^,]+') do if s == cur then ok = true end end
if not ok then return {0, cur} end
redis.call('HSET', KEYS[1], 'status', ARGV[2])
if ARGV[3] == '1' then redis.call('HINCRBY', KEYS[1], 'attempts', 1) end
if ARGV[4] == '1' then
  redis.call('HINCRBY', KEYS[2], ARGV[2], 1)
end
for i = 7, #ARGV, 2 do redis.call('HSET', KEYS[1], ARGV[i], ARGV[i + 1]) end
if ARGV[4] == '1' then
  local unfinished = redis.call('HGET', KEYS[1], 'unfinished_key')
  if unfinished then redis.call('ZREM', unfinished, ARGV[6]) end
  redis.call('PUBLISH', ARGV[5], ARGV[6])
end
return {1, cur, redis.call('HGET', KEYS[1], 'request_id'), redis.call('HEXISTS', KEYS[1], 'webhook')}
"""

# Admission and creation in one step. KEYS: 1 job hash, 2 image, 3 per-state counters, 4 the
# tenant's job index, 5 the tenant's unfinished jobs, 6 the idempotency key, 7 the queue's .msgs,
# 8 its .DQ.msgs, 9 its list, 10 its wake-up list. ARGV: 1 now (µs), 2 entries scored below this
# (µs) have expired, 3 ttl (s), 4 max queue depth, 5 max queued jobs (0: unlimited), 6 "1" to bind
# the idempotency key, 7 its value "<job id> <fingerprint>", 8 a stale value to replace ("" for
# none), 9 job id, 10 message id, 11 message, 12 image, 13 wake-up tokens kept, then the job's
# field/value pairs. Nothing is written before the checks pass, and the first write is the image
# (a command Redis refuses when out of memory), so a full Redis refuses the whole submission.
# The enqueue is Dramatiq's own (dispatch.lua "enqueue": HSET .msgs, RPUSH the list;
# fingerprinted by the broker's contract test).
_SUBMIT = """
if ARGV[6] == '1' then
  local bound = redis.call('GET', KEYS[6])
  if bound and bound ~= ARGV[8] then return {'replayed', bound} end
end
local depth = redis.call('HLEN', KEYS[7]) + redis.call('HLEN', KEYS[8])
if depth >= tonumber(ARGV[4]) then return {'queue_full', depth} end
if tonumber(ARGV[5]) > 0 then
  local queued = redis.call('ZCOUNT', KEYS[5], ARGV[2], '+inf')
  if queued >= tonumber(ARGV[5]) then return {'quota_exceeded', queued} end
end
local ttl = tonumber(ARGV[3])
redis.call('SET', KEYS[2], ARGV[12], 'EX', ttl)
for i = 14, #ARGV, 2 do redis.call('HSET', KEYS[1], ARGV[i], ARGV[i + 1]) end
redis.call('EXPIRE', KEYS[1], ttl)
redis.call('HINCRBY', KEYS[3], 'created', 1)
redis.call('ZADD', KEYS[4], ARGV[1], ARGV[9])
redis.call('ZREMRANGEBYSCORE', KEYS[4], '-inf', '(' .. ARGV[2])
redis.call('ZADD', KEYS[5], ARGV[1], ARGV[9])
redis.call('ZREMRANGEBYSCORE', KEYS[5], '-inf', '(' .. ARGV[2])
if ARGV[6] == '1' then redis.call('SET', KEYS[6], ARGV[7], 'EX', ttl) end
redis.call('HSET', KEYS[7], ARGV[10], ARGV[11])
redis.call('RPUSH', KEYS[9], ARGV[10])
redis.call('LPUSH', KEYS[10], 1)
redis.call('LTRIM', KEYS[10], 0, tonumber(ARGV[13]) - 1)
return {'created'}
"""

#: Wake-up tokens kept per queue; one is enough to wake a consumer, a few cover bursts.
WAKEUP_TOKENS = 16


def client_options(settings: Settings, *, max_connections: int | None = None) -> dict[str, Any]:
    """Keyword arguments of a Redis client made from ``settings``: timeouts, health checks, an optional bound.

    Every call has a socket (read/write) timeout and a connect timeout, so a stalled Redis fails a
    call instead of hanging it. With ``max_connections`` the pool is a blocking one: past the bound a
    caller waits (up to the socket timeout) for a free connection instead of opening another.

    Parameters
    ----------
    settings
        The process settings (``redis_*``).
    max_connections
        Bound of the client's pool; None for an unbounded pool.

    Returns
    -------
    dict
        Options for :func:`connect` or :func:`connect_async`.
    """
    options: dict[str, Any] = {
        "socket_timeout": settings.redis_socket_timeout_seconds,
        "socket_connect_timeout": settings.redis_connect_timeout_seconds,
        "socket_keepalive": True,
        "health_check_interval": HEALTH_CHECK_SECONDS,
    }
    if max_connections is not None:
        options |= {"max_connections": max_connections, "timeout": settings.redis_socket_timeout_seconds}
    return options


def connect(url: str, password: str | None = None, **kwargs: Any) -> redis.Redis:
    """A Redis client for ``url``; ``password`` overrides the one in the URL; ``max_connections`` bounds it."""
    if password:
        kwargs["password"] = password
    if "max_connections" not in kwargs:
        return redis.Redis.from_url(url, **kwargs)
    client = redis.Redis(connection_pool=redis.BlockingConnectionPool.from_url(url, **kwargs))
    client.auto_close_connection_pool = True  # close() closes the pool, as with from_url
    return client


def connect_async(url: str, password: str | None = None, **kwargs: Any) -> aioredis.Redis:
    """An asyncio Redis client for ``url``; ``password`` overrides the one in the URL; ``max_connections`` bounds it."""
    if password:
        kwargs["password"] = password
    if "max_connections" not in kwargs:
        return aioredis.Redis.from_url(url, **kwargs)
    client = aioredis.Redis(connection_pool=aioredis.BlockingConnectionPool.from_url(url, **kwargs))
    client.auto_close_connection_pool = True  # aclose() closes the pool, as with from_url
    return client


def _encode(value: Any) -> str:
    if isinstance(value, datetime):
        return value.isoformat()
    if hasattr(value, "model_dump"):
        return value.model_dump_json()
    if isinstance(value, dict | list):
        return json.dumps(value, separators=(",", ":"))
    return str(value)


def _decode(raw: dict[bytes, bytes]) -> JobRecord:
    data: dict[str, Any] = {k.decode(): v.decode() for k, v in raw.items()}
    for name in _JSON_FIELDS:
        if name in data:
            data[name] = json.loads(data[name])
    for name in ("started_at", "finished_at"):
        if data.get(name) == "":
            data[name] = None
    return JobRecord.model_validate(data)


def _job_fields(keys: KeyLayout, job: JobRecord) -> list[str]:
    """A new job's hash as field/value pairs (JSON fields encoded)."""
    fields = {k: _encode(v) for k, v in job.model_dump(exclude_none=True).items() if k not in _JSON_FIELDS}
    if job.webhook is not None:
        fields["webhook"] = job.webhook.model_dump_json()
    if job.video_options is not None:
        fields["video_options"] = job.video_options.model_dump_json()
    fields["unfinished_key"] = keys.unfinished(job.tenant)  # the final transition leaves the quota
    return [x for kv in fields.items() for x in kv]


def _transition_request(
    keys: KeyLayout, job_id: str, allowed: Iterable[JobStatus], new: JobStatus, incr: bool, fields: dict[str, Any]
) -> tuple[list[str], list[str]]:
    # final states are counted in the same script, so counters never lag the job
    args: list[str] = [",".join(allowed), new.value, "1" if incr else "0", "1" if new.is_final else "0"]
    args += [keys.done_channel(), job_id]
    for k, v in fields.items():
        args += [k, _encode(v)]
    return [keys.job(job_id), keys.job_counts()], args


def _transition_result(reply: list) -> tuple[bool, str | None, str | None]:
    applied, old, *rest = reply
    request_id = rest[0].decode() if rest and rest[0] else None
    return bool(applied), (old.decode() if old else None), request_id


def _has_webhook(reply: list) -> bool:
    return len(reply) > 3 and bool(reply[3])


#: Window over which the drain rate is measured (seconds).
DRAIN_WINDOW = 60.0


class RedisJobStore:
    """Jobs as Redis hashes with a TTL; transitions are atomic Lua scripts (workers, observers)."""

    DRAIN_WINDOW = DRAIN_WINDOW
    #: Upper bounds of the inference-time histogram (seconds).
    INFERENCE_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)

    def __init__(self, client: redis.Redis, prefix: str, ttl_seconds: int) -> None:
        self.client = client
        self.keys = KeyLayout(prefix)
        self.ttl = ttl_seconds
        self._transition = client.register_script(_TRANSITION)

    # --- read ------------------------------------------------------------------------
    def get(self, job_id: str) -> JobRecord | None:
        raw = self.client.hgetall(self.keys.job(job_id))
        return _decode(raw) if raw else None

    def load(self, job_id: str) -> tuple[JobRecord | None, bytes | None]:
        """The job and its image, in one round trip."""
        pipe = self.client.pipeline(transaction=False)
        pipe.hgetall(self.keys.job(job_id))
        pipe.get(self.keys.image(job_id))
        raw, image = pipe.execute()
        return (_decode(raw) if raw else None), image

    def image(self, job_id: str) -> bytes | None:
        return self.client.get(self.keys.image(job_id))

    # --- transitions -----------------------------------------------------------------
    def _apply(self, job_id: str, allowed: Iterable[JobStatus], new: JobStatus, incr: bool, **fields: Any):
        keys, args = _transition_request(self.keys, job_id, allowed, new, incr, fields)
        return _transition_result(self._transition(keys=keys, args=args))

    def mark_running(self, job_id: str) -> tuple[bool, str | None, str | None]:
        """queued|running -> running (a redelivered message counts a new attempt).

        Returns (applied, previous status or None if missing, the submitting request's id).
        """
        return self._apply(
            job_id, (JobStatus.queued, JobStatus.running), JobStatus.running, True, started_at=utcnow()
        )

    def _finish(self, job_id: str, task: str, allowed, new: JobStatus, inference_s: float | None, **fields):
        keys, args = _transition_request(self.keys, job_id, allowed, new, False, {**fields, "finished_at": utcnow()})
        reply = self._transition(keys=keys, args=args)
        applied = _transition_result(reply)[0]
        if applied:
            self._count_finished(task, new, inference_s)
        return applied, _has_webhook(reply)

    def mark_succeeded(self, job_id: str, result: Any, task: str, inference_s: float) -> tuple[bool, bool]:
        """running -> succeeded; returns (applied, whether the job has a webhook to deliver)."""
        return self._finish(job_id, task, (JobStatus.running,), JobStatus.succeeded, inference_s, result=result)

    def mark_failed(self, job_id: str, task: str, code: ErrorCode, message: str) -> tuple[bool, bool]:
        """queued|running -> failed with a reason; returns (applied, whether the job has a webhook)."""
        error = JobError(code=code, message=message)
        return self._finish(job_id, task, (JobStatus.queued, JobStatus.running), JobStatus.failed, None, error=error)

    def set_webhook_state(self, job_id: str, state: WebhookState) -> None:
        key = self.keys.job(job_id)
        if self.client.exists(key):
            self.client.hset(key, "webhook", state.model_dump_json())

    def _count_finished(self, task: str, status: JobStatus, inference_s: float | None) -> None:
        now = time.time()
        pipe = self.client.pipeline(transaction=False)
        pipe.zadd(self.keys.completions(task), {f"{now:.6f}": now})
        pipe.zremrangebyscore(self.keys.completions(task), 0, now - self.DRAIN_WINDOW)
        if inference_s is not None:
            hist = self.keys.inference(task)
            pipe.hincrby(hist, "count", 1)
            pipe.hincrbyfloat(hist, "sum", inference_s)
            # one counter per bucket (not cumulative): one command per job; readers add them up
            bound = next((b for b in self.INFERENCE_BUCKETS if inference_s <= b), "inf")
            pipe.hincrby(hist, f"b_{bound}", 1)
        pipe.execute()

    # --- observation -----------------------------------------------------------------
    def queue_depth(self, queue: str) -> int:
        """Unfinished work of a queue: waiting, in flight and waiting for a retry."""
        pipe = self.client.pipeline(transaction=False)
        for key in self.keys.depth_keys(queue):
            pipe.hlen(key)
        return sum(int(n) for n in pipe.execute())

    def oldest_waiting_seconds(self, queue: str, now: float | None = None) -> float:
        """Age of the oldest message no worker has fetched yet (the head of the list), seconds; 0 if none."""
        head = self.client.lindex(self.keys.queue(queue), 0)
        raw = self.client.hget(self.keys.queue_messages(queue), head) if head is not None else None
        if raw is None:
            return 0.0
        enqueued_ms = json.loads(raw).get("message_timestamp", 0)
        return max(0.0, (time.time() if now is None else now) - enqueued_ms / 1000)

    def job_counts(self) -> dict[str, int]:
        return {k.decode(): int(v) for k, v in self.client.hgetall(self.keys.job_counts()).items()}

    def inference_histogram(self, task: str) -> tuple[list[tuple[str, float]], float, float]:
        """Cumulative Prometheus buckets ``[(le, count), ..., ("+Inf", count)]``, the sum, the count."""
        raw = {k.decode(): float(v) for k, v in self.client.hgetall(self.keys.inference(task)).items()}
        buckets, running = [], 0.0
        for bound in self.INFERENCE_BUCKETS:
            running += raw.get(f"b_{bound}", 0.0)
            buckets.append((str(bound), running))
        count = raw.get("count", 0.0)
        buckets.append(("+Inf", count))
        return buckets, raw.get("sum", 0.0), count

    def beat(self, task: str, worker_id: str, info: dict[str, Any]) -> None:
        """Record a live, warmed-up worker."""
        self.client.hset(self.keys.workers(task), worker_id, json.dumps({**info, "ts": time.time()}))

    def forget_worker(self, task: str, worker_id: str) -> None:
        self.client.hdel(self.keys.workers(task), worker_id)

    def live_workers(self, task: str, stale_after: float) -> list[dict[str, Any]]:
        now = time.time()
        live, stale = [], []
        for wid, raw in self.client.hgetall(self.keys.workers(task)).items():
            info = json.loads(raw)
            (live if now - info.get("ts", 0) <= stale_after else stale).append((wid, info))
        if stale:
            self.client.hdel(self.keys.workers(task), *[w for w, _ in stale])
        return [{"id": w.decode(), **i} for w, i in live]


class AsyncRedisJobStore:
    """The API's job store (a :class:`~detectflow.jobs.store.JobStore`) on redis.asyncio: no thread per request.

    Shares the key layout, encoding and transition script with :class:`RedisJobStore`.
    """

    def __init__(self, client: aioredis.Redis, prefix: str, ttl_seconds: int) -> None:
        self.client = client
        self.keys = KeyLayout(prefix)
        self.ttl = ttl_seconds
        self._transition = client.register_script(_TRANSITION)
        self._submit = client.register_script(_SUBMIT)

    async def submit(
        self, job: JobRecord, image: bytes, message: QueuedMessage, admission: Admission, replace: str = ""
    ) -> Submitted:
        """Admit and create a job in one script (see :meth:`~detectflow.jobs.store.JobStore.submit`).

        ``replace`` is an idempotency binding known to be stale (its job expired): it is rebound.
        """
        k = self.keys
        idem = admission.idempotency_key
        score = created_us(job)
        keys = [
            k.job(job.id), k.image(job.id), k.job_counts(), k.job_index(job.tenant), k.unfinished(job.tenant),
            k.idempotency(job.tenant, idem or ""), *k.depth_keys(message.queue), k.queue(message.queue),
            k.wakeup(message.queue),
        ]  # fmt: skip
        args = [
            score, score - self.ttl * 1_000_000, self.ttl, admission.max_queue_depth,
            admission.max_queued_jobs or 0, "1" if idem else "0", f"{job.id} {admission.fingerprint}", replace,
            job.id, message.message_id, message.data, image, WAKEUP_TOKENS, *_job_fields(k, job),
        ]  # fmt: skip
        outcome, *rest = await self._submit(keys=keys, args=args)
        outcome = outcome.decode()
        if outcome == "replayed":
            found_id, _, found_fp = rest[0].decode().partition(" ")
            if await self.client.exists(k.job(found_id)):
                return Submitted("replayed", job_id=found_id, fingerprint=found_fp)
            return await self.submit(job, image, message, admission, replace=rest[0].decode())  # its job expired
        return Submitted(outcome, count=int(rest[0]) if rest else 0)

    async def get(self, job_id: str) -> JobRecord | None:
        raw = await self.client.hgetall(self.keys.job(job_id))
        return _decode(raw) if raw else None

    async def image(self, job_id: str) -> bytes | None:
        return await self.client.get(self.keys.image(job_id))

    async def annotated(self, job_id: str) -> bytes | None:
        return await self.client.get(self.keys.annotated(job_id))

    async def save_annotated(self, job_id: str, png: bytes) -> None:
        ttl = await self.client.ttl(self.keys.job(job_id))
        await self.client.set(self.keys.annotated(job_id), png, ex=ttl if ttl and ttl > 0 else self.ttl)

    async def cancel(self, job_id: str, running: bool = False) -> tuple[bool, str | None]:
        """queued (or, with ``running``, running) -> cancelled; returns (applied, previous status or None if missing)."""
        allowed = (JobStatus.queued, JobStatus.running) if running else (JobStatus.queued,)
        keys, args = _transition_request(
            self.keys, job_id, allowed, JobStatus.cancelled, False, {"finished_at": utcnow()}
        )
        applied, old, _ = _transition_result(await self._transition(keys=keys, args=args))
        return applied, old

    async def queue_depth(self, queue: str) -> int:
        """Unfinished work of a queue: waiting, in flight and waiting for a retry."""
        async with self.client.pipeline(transaction=False) as pipe:
            for key in self.keys.depth_keys(queue):
                pipe.hlen(key)
            return sum(int(n) for n in await pipe.execute())

    async def drain_rate(self, task: str) -> float:
        """Jobs finished per second over the last ``DRAIN_WINDOW`` seconds."""
        now = time.time()
        return await self.client.zcount(self.keys.completions(task), now - DRAIN_WINDOW, now) / DRAIN_WINDOW

    async def list_jobs(
        self, tenant: str, limit: int, cursor: Cursor | None, where: JobFilter, max_scanned: int
    ) -> tuple[list[JobRecord], Cursor | None]:
        """Jobs newest first after ``cursor`` that ``where`` keeps (see :meth:`JobStore.list_jobs`)."""
        top = "+inf" if cursor is None else cursor.created_us
        bottom = "-inf" if where.min_score is None else f"({where.min_score}"
        kept: list[JobRecord] = []
        scanned, last, offset = 0, cursor, 0
        batch = min(max(limit * 2, 16), max_scanned)
        while scanned < max_scanned:
            # ties share a score: skip the ones at or before the cursor
            entries = await self.client.zrange(
                self.keys.job_index(tenant), top, bottom, byscore=True, desc=True, offset=offset, num=batch, withscores=True
            )
            if not entries:
                return kept, None
            offset += len(entries)
            fresh = [(m.decode(), int(sc)) for m, sc in entries]
            fresh = [(jid, sc) for jid, sc in fresh if cursor is None or cursor.is_after(sc, jid)]
            async with self.client.pipeline(transaction=False) as pipe:
                for jid, _ in fresh:
                    pipe.hgetall(self.keys.job(jid))
                raws = await pipe.execute()
            for (jid, sc), raw in zip(fresh, raws, strict=True):
                scanned += 1
                last = Cursor(sc, jid)
                if raw:
                    job = _decode(raw)
                    if where.keeps(job):
                        kept.append(job)
                if len(kept) == limit or scanned >= max_scanned:
                    return kept, last
            if len(entries) < batch:
                return kept, None
        return kept, last
