"""Jobs in Redis: the synchronous store of workers and observers, the asyncio store of the API (one script set)."""

from __future__ import annotations

import json
import time
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import redis
import redis.asyncio as aioredis

from detectflow.blobs.base import INPUT_PREFIX
from detectflow.config import Settings
from detectflow.jobs.cache import cache_digest
from detectflow.jobs.errors import ErrorCode
from detectflow.jobs.records import JobError, JobRecord, JobStatus, WebhookState, utcnow
from detectflow.jobs.store import Admission, Cursor, JobFilter, QueuedMessage, Submitted, created_us
from detectflow.keys import KeyLayout

__all__ = ["AsyncRedisJobStore", "Delivery", "JobEnd", "RedisJobStore", "client_options", "connect", "connect_async", "job_keys"]

#: How often an idle pooled connection is pinged before reuse (seconds).
HEALTH_CHECK_SECONDS = 30

_JSON_FIELDS = ("error", "result", "webhook", "video_options", "options")

# Conditional transition: KEYS[1] job hash, KEYS[2] per-state counters, KEYS[3] the webhook
# queue's .msgs, KEYS[4] its list, KEYS[5] its wake-up list, KEYS[6] the task's completions, KEYS[7]
# its inference histogram, KEYS[8] the blob expiry set, KEYS[9..] the job's own keys (image,
# outputs). ARGV = [allowed "a,b", new_status, incr_attempts 0|1, final 0|1, done channel, job id,
# ttl (s), webhook message id ("" for none), webhook message, wake-up tokens kept, now (s; "" to
# record no completion), completions below this score are dropped, inference seconds ("" for none),
# its histogram bucket field, when the input blob expires (s; "" to leave it), the input blob's
# name before its SHA-256, field, value, ...].
# A final transition starts the TTL of the job and its keys (unfinished jobs never expire),
# publishes the job id on the done channel (long-polling readers) and, when the job has a webhook,
# enqueues the webhook's Dramatiq message in the same step (an outbox: a crash cannot keep one
# without the other; the enqueue is dispatch.lua's, as in _SUBMIT). A worker's final transition
# also records the completion (drain rate) and the inference time, and moves the input blob's
# expiry to the record's (the latest expiry wins, as blobs.expiry's _MARK): one round trip per job
# end. Returns {1, old_status, request_id, has_webhook} when applied, {0, old_status or false} otherwise.
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
for i = 17, #ARGV, 2 do redis.call('HSET', KEYS[1], ARGV[i], ARGV[i + 1]) end
local has_webhook = redis.call('HEXISTS', KEYS[1], 'webhook')
if ARGV[4] == '1' then
  local unfinished = redis.call('HGET', KEYS[1], 'unfinished_key')
  if unfinished then redis.call('ZREM', unfinished, ARGV[6]) end
  local ttl = tonumber(ARGV[7])
  redis.call('EXPIRE', KEYS[1], ttl)
  for i = 9, #KEYS do redis.call('EXPIRE', KEYS[i], ttl) end
  if has_webhook == 1 and ARGV[8] ~= '' then
    redis.call('HSET', KEYS[3], ARGV[8], ARGV[9])
    redis.call('RPUSH', KEYS[4], ARGV[8])
    redis.call('LPUSH', KEYS[5], 1)
    redis.call('LTRIM', KEYS[5], 0, tonumber(ARGV[10]) - 1)
  end
  if ARGV[11] ~= '' then
    redis.call('ZADD', KEYS[6], ARGV[11], ARGV[11])
    redis.call('ZREMRANGEBYSCORE', KEYS[6], 0, ARGV[12])
  end
  if ARGV[13] ~= '' then
    redis.call('HINCRBY', KEYS[7], 'count', 1)
    redis.call('HINCRBYFLOAT', KEYS[7], 'sum', ARGV[13])
    redis.call('HINCRBY', KEYS[7], ARGV[14], 1)
  end
  local sha = ARGV[15] ~= '' and redis.call('HGET', KEYS[1], 'image_sha256')
  if sha then
    local name, at = ARGV[16] .. sha, tonumber(ARGV[15])
    local expires = redis.call('ZSCORE', KEYS[8], name)
    if not expires or tonumber(expires) < at then redis.call('ZADD', KEYS[8], at, name) end
  end
  redis.call('PUBLISH', ARGV[5], ARGV[6])
end
return {1, cur, redis.call('HGET', KEYS[1], 'request_id'), has_webhook}
"""

# The start of a delivery. KEYS[1] job hash; ARGV: 1 started_at, 2 max deliveries, 3 "1" to leave
# a job found ``running`` as it is ({3, 'running'}: the caller takes the process's exclusive lock
# first, then starts it again with ARGV[3] "0"). A job found ``running`` was being run by a worker
# that died (or was killed) before the delivery ended: its ``crashed_deliveries`` grows, and at the
# cap the delivery is refused ({2, ...}: the caller fails the job). Otherwise queued|retrying|running
# -> running, one more attempt. Returns {applied 0|1|2|3, old status or false, request_id, crashed
# deliveries, the job's hash (HGETALL) once started}.
_START = """
local cur = redis.call('HGET', KEYS[1], 'status')
if not cur then return {0, false} end
if cur ~= 'queued' and cur ~= 'retrying' and cur ~= 'running' then return {0, cur} end
if cur == 'running' and ARGV[3] == '1' then return {3, cur} end
local crashed = tonumber(redis.call('HGET', KEYS[1], 'crashed_deliveries') or '0')
if cur == 'running' then
  crashed = crashed + 1
  redis.call('HSET', KEYS[1], 'crashed_deliveries', crashed)
end
local request_id = redis.call('HGET', KEYS[1], 'request_id')
if crashed >= tonumber(ARGV[2]) then return {2, cur, request_id, crashed} end
redis.call('HSET', KEYS[1], 'status', 'running', 'started_at', ARGV[1])
redis.call('HINCRBY', KEYS[1], 'attempts', 1)
return {1, cur, request_id, crashed, redis.call('HGETALL', KEYS[1])}
"""

# Admission and creation in one step. KEYS: 1 job hash, 2 per-state counters, 3 the tenant's job
# index, 4 the tenant's unfinished jobs, 5 the idempotency key, 6 the queue's .msgs, 7 its .DQ.msgs,
# 8 its list, 9 its wake-up list. ARGV: 1 now (µs), 2 entries scored below this (µs) have expired,
# 3 ttl (s), 4 max queue depth, 5 max queued jobs (0: unlimited), 6 "1" to bind the idempotency
# key, 7 its value "<job id> <fingerprint>", 8 a stale value to replace ("" for none), 9 job id,
# 10 message id, 11 message, 12 wake-up tokens kept, then the job's field/value pairs. The image
# is in the blob store already (detectflow.blobs). Nothing is written before the checks pass, and
# a full Redis refuses the script's first write, so the whole submission.
# The enqueue is Dramatiq's own (dispatch.lua "enqueue": HSET .msgs, RPUSH the list;
# fingerprinted by the broker's contract test).
_SUBMIT = """
if ARGV[6] == '1' then
  local bound = redis.call('GET', KEYS[5])
  if bound and bound ~= ARGV[8] then return {'replayed', bound} end
end
local depth = redis.call('HLEN', KEYS[6]) + redis.call('HLEN', KEYS[7])
if depth >= tonumber(ARGV[4]) then return {'queue_full', depth} end
if tonumber(ARGV[5]) > 0 then
  local queued = redis.call('ZCOUNT', KEYS[4], ARGV[2], '+inf')
  if queued >= tonumber(ARGV[5]) then return {'quota_exceeded', queued} end
end
local ttl = tonumber(ARGV[3])
for i = 13, #ARGV, 2 do redis.call('HSET', KEYS[1], ARGV[i], ARGV[i + 1]) end
redis.call('HINCRBY', KEYS[2], 'created', 1)
redis.call('ZADD', KEYS[3], ARGV[1], ARGV[9])
redis.call('ZREMRANGEBYSCORE', KEYS[3], '-inf', '(' .. ARGV[2])
redis.call('ZADD', KEYS[4], ARGV[1], ARGV[9])
redis.call('ZREMRANGEBYSCORE', KEYS[4], '-inf', '(' .. ARGV[2])
if ARGV[6] == '1' then redis.call('SET', KEYS[5], ARGV[7], 'EX', ttl) end
redis.call('HSET', KEYS[6], ARGV[10], ARGV[11])
redis.call('RPUSH', KEYS[8], ARGV[10])
redis.call('LPUSH', KEYS[9], 1)
redis.call('LTRIM', KEYS[9], 0, tonumber(ARGV[12]) - 1)
return {'created'}
"""

#: Window over which the drain rate is measured (seconds).
DRAIN_WINDOW = 60.0

#: Wake-up tokens kept per queue; one is enough to wake a consumer, a few cover bursts.
WAKEUP_TOKENS = 16

#: The states a job can be cancelled, started or failed from.
UNFINISHED = (JobStatus.queued, JobStatus.retrying, JobStatus.running)


def job_keys(keys: KeyLayout, job_id: str) -> list[str]:
    """The Redis keys a job owns besides its hash: they expire with it, ``job_ttl`` after it ends.

    (Its input and annotated image are blobs: the blob expiry set follows the job's end too.)
    """
    return [
        keys.annotated(job_id), keys.video_plan(job_id), keys.video_segments_done(job_id), keys.video_frames(job_id)
    ]


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
    if job.options is not None:
        fields["options"] = json.dumps(job.options, separators=(",", ":"))
    fields["unfinished_key"] = keys.unfinished(job.tenant)  # the final transition leaves the quota
    return [x for kv in fields.items() for x in kv]


@dataclass(frozen=True, slots=True)
class JobEnd:
    """What a worker's final transition records besides the job, in the same script.

    ``inference_s`` goes into the task's histogram (None: none ran); the completion at ``now``
    (epoch s) feeds the drain rate; the job's input blob expires at ``blob_expires_at`` (epoch s)
    unless it already expires later (None: the blob's expiry is left as it is).
    """

    task: str
    now: float
    inference_s: float | None = None
    blob_expires_at: float | None = None


#: Upper bounds of the inference-time histogram (seconds).
INFERENCE_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


def _end_args(keys: KeyLayout, end: JobEnd | None, drain_window: float) -> tuple[list[str], list[str]]:
    """The keys (completions, histogram, blob expiry) and arguments of a transition's job-end records."""
    if end is None:
        return [keys.job_counts()] * 3, ["", "", "", "", "", INPUT_PREFIX]  # placeholders: untouched
    now = f"{end.now:.6f}"
    args = [now, f"{end.now - drain_window:.6f}"]
    if end.inference_s is None:
        args += ["", ""]
    else:
        # one counter per bucket (not cumulative): one command per job; readers add them up
        bound = next((b for b in INFERENCE_BUCKETS if end.inference_s <= b), "inf")
        args += [repr(end.inference_s), f"b_{bound}"]
    args += ["" if end.blob_expires_at is None else f"{end.blob_expires_at:.3f}", INPUT_PREFIX]
    return [keys.completions(end.task), keys.inference(end.task), keys.blob_expiry()], args


def _transition_request(
    keys: KeyLayout,
    job_id: str,
    allowed: Iterable[JobStatus],
    new: JobStatus,
    incr: bool,
    fields: dict[str, Any],
    ttl: int = 0,
    webhook: QueuedMessage | None = None,
    end: JobEnd | None = None,
) -> tuple[list[str], list[str]]:
    # final states are counted in the same script, so counters never lag the job
    args: list[str] = [",".join(allowed), new.value, "1" if incr else "0", "1" if new.is_final else "0"]
    args += [keys.done_channel(), job_id, str(ttl)]
    if webhook is None:
        args += ["", "", str(WAKEUP_TOKENS)]
        queue_keys = [keys.job_counts()] * 3  # untouched without a message (a cluster-friendly placeholder)
    else:
        args += [webhook.message_id, webhook.data, str(WAKEUP_TOKENS)]
        queue_keys = [keys.queue_messages(webhook.queue), keys.queue(webhook.queue), keys.wakeup(webhook.queue)]
    end_keys, end_args = _end_args(keys, end, DRAIN_WINDOW)
    args += end_args
    for k, v in fields.items():
        args += [k, _encode(v)]
    return [keys.job(job_id), keys.job_counts(), *queue_keys, *end_keys, *job_keys(keys, job_id)], args


def _transition_result(reply: list) -> tuple[bool, str | None, str | None]:
    applied, old, *rest = reply
    request_id = rest[0].decode() if rest and rest[0] else None
    return bool(applied), (old.decode() if old else None), request_id


def _has_webhook(reply: list) -> bool:
    return len(reply) > 3 and bool(reply[3])


@dataclass(frozen=True, slots=True)
class Delivery:
    """How the start of a delivery went: ``started`` (``job`` is its record, as started), or
    ``capped`` (fail it ``worker_crashed``), or ``suspect`` (found running and left so: start it
    again once it runs alone), or none of them (the job is gone or finished: skip the message);
    ``crashed`` deliveries so far."""

    started: bool
    capped: bool
    previous: str | None
    request_id: str | None
    crashed: int
    suspect: bool = False
    job: JobRecord | None = None


class RedisJobStore:
    """Jobs as Redis hashes with a TTL; transitions are atomic Lua scripts (workers, observers)."""

    DRAIN_WINDOW = DRAIN_WINDOW
    INFERENCE_BUCKETS = INFERENCE_BUCKETS

    def __init__(self, client: redis.Redis, prefix: str, ttl_seconds: int, result_cache_seconds: int = 0) -> None:
        self.client = client
        self.keys = KeyLayout(prefix)
        self.ttl = ttl_seconds
        self.result_cache_seconds = result_cache_seconds
        self._transition = client.register_script(_TRANSITION)
        self._start = client.register_script(_START)

    # --- read ------------------------------------------------------------------------
    def get(self, job_id: str) -> JobRecord | None:
        raw = self.client.hgetall(self.keys.job(job_id))
        return _decode(raw) if raw else None

    def status(self, job_id: str) -> str | None:
        """The job's status alone (None when missing)."""
        raw = self.client.hget(self.keys.job(job_id), "status")
        return raw.decode() if raw else None

    # --- transitions -----------------------------------------------------------------
    def _apply(self, job_id: str, allowed: Iterable[JobStatus], new: JobStatus, incr: bool, **fields: Any):
        keys, args = _transition_request(self.keys, job_id, allowed, new, incr, fields, self.ttl)
        return _transition_result(self._transition(keys=keys, args=args))

    def mark_running(self, job_id: str) -> tuple[bool, str | None, str | None]:
        """queued|retrying|running -> running (a redelivered message counts a new attempt).

        Returns (applied, previous status or None if missing, the submitting request's id).
        """
        return self._apply(job_id, UNFINISHED, JobStatus.running, True, started_at=utcnow())

    def start_delivery(self, job_id: str, max_deliveries: int, *, suspects: bool = True) -> Delivery:
        """Start a delivery (queued|retrying|running -> running) under the delivery cap.

        A job found ``running`` was held by a worker that died mid-job: one more crashed delivery.
        Once ``max_deliveries`` have crashed the job is not started (``capped``): fail it. With
        ``suspects=False`` a job found ``running`` is left as it is (``suspect``).
        """
        args = [_encode(utcnow()), max_deliveries, "0" if suspects else "1"]
        applied, old, *rest = self._start(keys=[self.keys.job(job_id)], args=args)
        request_id, crashed, raw = (rest + [None, 0, None])[:3]
        return Delivery(
            started=applied == 1,
            capped=applied == 2,
            previous=old.decode() if old else None,
            request_id=request_id.decode() if request_id else None,
            crashed=int(crashed or 0),
            suspect=applied == 3,
            job=_decode(dict(zip(raw[::2], raw[1::2], strict=True))) if raw else None,
        )

    def mark_retrying(self, job_id: str) -> bool:
        """running -> retrying: a transient failure waits for its retry (called before the retry is sent)."""
        return self._apply(job_id, (JobStatus.running,), JobStatus.retrying, False)[0]

    def _finish(self, job_id: str, allowed, new: JobStatus, webhook, end: JobEnd, **fields):
        keys, args = _transition_request(
            self.keys, job_id, allowed, new, False, {**fields, "finished_at": utcnow()}, self.ttl, webhook, end
        )
        reply = self._transition(keys=keys, args=args)
        return _transition_result(reply)[0], _has_webhook(reply)

    def mark_succeeded(
        self, job_id: str, result: Any, task: str, inference_s: float, webhook: QueuedMessage | None = None,
        blob_expires_at: float | None = None,
    ) -> tuple[bool, bool]:  # fmt: skip
        """running -> succeeded, enqueuing ``webhook`` in the same step when the job has one.

        The same step counts the completion and its inference time for ``task``, and makes the job's
        input blob expire at ``blob_expires_at`` (unless it expires later; None leaves it).
        Returns (applied, whether the job has a webhook). A job cancelled while it ran stays cancelled.
        """
        end = JobEnd(task, time.time(), inference_s, blob_expires_at)
        done = self._finish(job_id, (JobStatus.running,), JobStatus.succeeded, webhook, end, result=result)
        if done[0] and self.result_cache_seconds > 0:
            self._remember(job_id, task, result)
        return done

    def _remember(self, job_id: str, task: str, result: Any) -> None:
        """Make a succeeded job the cached answer to its tenant's identical requests (while both live)."""
        model = getattr(getattr(result, "model", None), "sha256", None)
        tenant, sha, cache = self.client.hmget(self.keys.job(job_id), "tenant", "image_sha256", "cache")
        ttl = self.client.ttl(self.keys.job(job_id))  # set by the final transition: job_ttl from now
        if not model or not tenant or not sha or (cache or b"True").decode().lower() in ("false", "0") or ttl <= 0:
            return
        key = self.keys.result_cache(tenant.decode(), cache_digest(task, sha.decode(), model))
        pipe = self.client.pipeline(transaction=False)
        pipe.set(key, job_id, ex=min(self.result_cache_seconds, ttl))  # never outlives the job it names
        pipe.set(self.keys.serving_model(task), model)
        pipe.execute()

    def mark_failed(
        self, job_id: str, task: str, code: ErrorCode, message: str, webhook: QueuedMessage | None = None,
        blob_expires_at: float | None = None,
    ) -> tuple[bool, bool]:  # fmt: skip
        """queued|retrying|running -> failed with a reason (``webhook``, counts and blob expiry as :meth:`mark_succeeded`)."""
        error = JobError(code=code, message=message)
        end = JobEnd(task, time.time(), None, blob_expires_at)
        return self._finish(job_id, UNFINISHED, JobStatus.failed, webhook, end, error=error)

    def set_input(self, job_id: str, image_sha256: str, media: str | None = None) -> None:
        """Record the input a worker fetched (``source_url``) or took (``upload_id``) by its SHA-256, and its
        media once the worker knows it, if the job still exists."""
        key = self.keys.job(job_id)
        if self.client.exists(key):
            self.client.hset(key, mapping={"image_sha256": image_sha256, **({"media": media} if media else {})})

    def set_webhook_state(self, job_id: str, state: WebhookState) -> None:
        key = self.keys.job(job_id)
        if self.client.exists(key):
            self.client.hset(key, "webhook", state.model_dump_json())

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
        """Record a live, warmed-up worker (and when its pool last had one)."""
        now = time.time()
        pipe = self.client.pipeline(transaction=False)
        pipe.hset(self.keys.workers(task), worker_id, json.dumps({**info, "ts": now}))
        pipe.hset(self.keys.workers_seen(), task, now)
        pipe.execute()

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
        self, job: JobRecord, message: QueuedMessage, admission: Admission, replace: str = ""
    ) -> Submitted:
        """Admit and create a job in one script (see :meth:`~detectflow.jobs.store.JobStore.submit`).

        ``replace`` is an idempotency binding known to be stale (its job expired): it is rebound.
        """
        k = self.keys
        idem = admission.idempotency_key
        score = created_us(job)
        keys = [
            k.job(job.id), k.job_counts(), k.job_index(job.tenant), k.unfinished(job.tenant),
            k.idempotency(job.tenant, idem or ""), *k.depth_keys(message.queue), k.queue(message.queue),
            k.wakeup(message.queue),
        ]  # fmt: skip
        args = [
            score, score - self.ttl * 1_000_000, self.ttl, admission.max_queue_depth,
            admission.max_queued_jobs or 0, "1" if idem else "0", f"{job.id} {admission.fingerprint}", replace,
            job.id, message.message_id, message.data, WAKEUP_TOKENS, *_job_fields(k, job),
        ]  # fmt: skip
        outcome, *rest = await self._submit(keys=keys, args=args)
        outcome = outcome.decode()
        if outcome == "replayed":
            found_id, _, found_fp = rest[0].decode().partition(" ")
            if await self.client.exists(k.job(found_id)):
                return Submitted("replayed", job_id=found_id, fingerprint=found_fp)
            return await self.submit(job, message, admission, replace=rest[0].decode())  # its job expired
        return Submitted(outcome, count=int(rest[0]) if rest else 0)

    async def get(self, job_id: str) -> JobRecord | None:
        raw = await self.client.hgetall(self.keys.job(job_id))
        return _decode(raw) if raw else None

    async def cached(self, tenant: str, task: str, image_sha256: str) -> JobRecord | None:
        """The tenant's succeeded job with this input and task on the model serving it now, if cached."""
        model = await self.client.get(self.keys.serving_model(task))
        if model is None:
            return None
        found = await self.client.get(self.keys.result_cache(tenant, cache_digest(task, image_sha256, model.decode())))
        job = await self.get(found.decode()) if found else None
        if job is None or job.tenant != tenant or job.status is not JobStatus.succeeded or job.result is None:
            return None
        return job

    async def create_finished(self, job: JobRecord) -> None:
        """Store a job that is final already (a cached answer): its record and its place in the listing."""
        k = self.keys
        async with self.client.pipeline(transaction=True) as pipe:
            pipe.hset(k.job(job.id), mapping={**dict(zip(*[iter(_job_fields(k, job))] * 2, strict=True)),
                                              "result": _encode(job.result)})  # fmt: skip
            pipe.hdel(k.job(job.id), "unfinished_key")
            pipe.expire(k.job(job.id), self.ttl)
            pipe.hincrby(k.job_counts(), "created", 1)
            pipe.hincrby(k.job_counts(), job.status.value, 1)
            pipe.zadd(k.job_index(job.tenant), {job.id: created_us(job)})
            await pipe.execute()

    async def annotated(self, job_id: str) -> str | None:
        """The blob name of the job's rendered annotated PNG, if it was kept."""
        name = await self.client.get(self.keys.annotated(job_id))
        return name.decode() if name else None

    async def save_annotated(self, job_id: str, name: str) -> None:
        """Remember the blob name of the job's annotated PNG, for as long as the job lives."""
        ttl = await self.client.ttl(self.keys.job(job_id))
        await self.client.set(self.keys.annotated(job_id), name, ex=ttl if ttl and ttl > 0 else self.ttl)

    async def cancel(self, job_id: str) -> tuple[bool, str | None]:
        """queued|retrying|running -> cancelled; returns (applied, previous status or None if missing).

        A running job's worker finds it cancelled when it stores the result, and drops the result.
        """
        keys, args = _transition_request(
            self.keys, job_id, UNFINISHED, JobStatus.cancelled, False, {"finished_at": utcnow()}, self.ttl
        )
        applied, old, _ = _transition_result(await self._transition(keys=keys, args=args))
        return applied, old

    async def pool_state(self, task: str, stale_after: float) -> tuple[int, float | None]:
        """Live workers of ``task`` and when one last beat (unix seconds; None if none ever did)."""
        async with self.client.pipeline(transaction=False) as pipe:
            pipe.hvals(self.keys.workers(task))
            pipe.hget(self.keys.workers_seen(), task)
            beats, seen = await pipe.execute()
        now = time.time()
        stamps = [json.loads(b).get("ts", 0.0) for b in beats] + ([float(seen)] if seen else [])
        live = sum(1 for b in beats if now - json.loads(b).get("ts", 0.0) <= stale_after)
        return live, (max(stamps) if stamps else None)

    async def fail_waiting(
        self, job_id: str, code: ErrorCode, message: str, webhook: QueuedMessage | None = None
    ) -> bool:
        """queued -> failed (held too long without capacity); the webhook's message is sent in the same step."""
        fields = {"error": JobError(code=code, message=message), "finished_at": utcnow()}
        keys, args = _transition_request(
            self.keys, job_id, (JobStatus.queued,), JobStatus.failed, False, fields, self.ttl, webhook
        )
        return _transition_result(await self._transition(keys=keys, args=args))[0]

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
