"""Where a video job keeps its parts: its plan, finished segments and per-frame results (Redis, for now).

This is the one seam between video jobs and storage: every read and write of a video's bytes, plan,
segments and frames goes through these functions, so they can move to the blob store without
touching the worker or the API. The video's bytes are the job's input (the key the image of an
image job uses, written by the submit transaction).
"""

from __future__ import annotations

import json
from typing import Any

import redis
import redis.asyncio as aioredis

from detectflow.keys import KeyLayout

__all__ = [
    "job_status",
    "save_plan",
    "load_plan",
    "finish_segment",
    "load_segments",
    "drop_segments",
    "claim_progress",
    "save_frames",
    "frame_page",
    "frame_rows",
]

# Record one finished segment, once. KEYS: 1 the segment, 2 the set of finished ones, 3 the job hash.
# ARGV: 1 segment index, 2 its JSON, 3 ttl (s), 4 frames in it. Returns {added 0|1, finished, total}.
# A redelivered segment finds its index in the set: its frames are not counted twice.
_FINISH = """
local total = tonumber(redis.call('HGET', KEYS[3], 'video_segments_total') or '0')
if redis.call('SISMEMBER', KEYS[2], ARGV[1]) == 1 then
  return {0, redis.call('SCARD', KEYS[2]), total}
end
redis.call('SET', KEYS[1], ARGV[2], 'EX', tonumber(ARGV[3]))
redis.call('SADD', KEYS[2], ARGV[1])
redis.call('EXPIRE', KEYS[2], tonumber(ARGV[3]))
if redis.call('EXISTS', KEYS[3]) == 1 then
  redis.call('HINCRBY', KEYS[3], 'video_frames_done', tonumber(ARGV[4]))
  redis.call('HINCRBY', KEYS[3], 'video_segments_done', 1)
end
return {1, redis.call('SCARD', KEYS[2]), total}
"""

#: Frames written per command when storing a finished job's frames.
_FRAMES_PER_PUSH = 500


def _ttl(client: redis.Redis, keys: KeyLayout, job_id: str, default: int) -> int:
    left = client.ttl(keys.job(job_id))
    return int(left) if left and left > 0 else default


def job_status(client: redis.Redis, keys: KeyLayout, job_id: str) -> str | None:
    """The job's status, or None when it is gone."""
    raw = client.hget(keys.job(job_id), "status")
    return raw.decode() if raw else None


def save_plan(client: redis.Redis, keys: KeyLayout, job_id: str, plan: dict[str, Any], ttl: int) -> None:
    """Store the job's plan and its totals (progress starts at zero); a redelivered split writes the same plan."""
    ttl = _ttl(client, keys, job_id, ttl)
    pipe = client.pipeline(transaction=True)
    pipe.set(keys.video_plan(job_id), json.dumps(plan, separators=(",", ":")), ex=ttl)
    pipe.hsetnx(keys.job(job_id), "video_frames_done", 0)
    pipe.hsetnx(keys.job(job_id), "video_segments_done", 0)
    pipe.hset(
        keys.job(job_id),
        mapping={
            "video_frames_total": sum(len(s) for s in plan["segments"]),
            "video_segments_total": len(plan["segments"]),
        },
    )
    pipe.execute()


def load_plan(client: redis.Redis, keys: KeyLayout, job_id: str) -> dict[str, Any] | None:
    """The job's plan, or None when it is gone."""
    raw = client.get(keys.video_plan(job_id))
    return json.loads(raw) if raw else None


def finish_segment(
    client: redis.Redis, keys: KeyLayout, job_id: str, index: int, segment: dict[str, Any], ttl: int
) -> tuple[bool, int, int]:
    """Record a finished segment and count its frames towards progress (atomically, once per segment).

    Returns
    -------
    tuple
        ``(added, finished, total)``: whether this call recorded it, segments finished, segments planned.
    """
    script = client.register_script(_FINISH)
    frames = len(segment["frames"])
    keys_ = [keys.video_segment(job_id, index), keys.video_segments_done(job_id), keys.job(job_id)]
    added, done, total = script(
        keys=keys_, args=[index, json.dumps(segment, separators=(",", ":")), _ttl(client, keys, job_id, ttl), frames]
    )
    return bool(added), int(done), int(total)


def load_segments(client: redis.Redis, keys: KeyLayout, job_id: str, total: int) -> list[dict[str, Any]] | None:
    """Every finished segment in order, or None if one is missing (expired)."""
    raws = client.mget([keys.video_segment(job_id, i) for i in range(total)])
    if any(r is None for r in raws):
        return None
    return [json.loads(r) for r in raws]


def save_frames(client: redis.Redis, keys: KeyLayout, job_id: str, frames: list[dict[str, Any]], ttl: int) -> None:
    """Store a finished job's frames for paging (replacing any earlier copy) and drop its segments."""
    ttl = _ttl(client, keys, job_id, ttl)
    key = keys.video_frames(job_id)
    pipe = client.pipeline(transaction=True)
    pipe.delete(key)
    for at in range(0, len(frames), _FRAMES_PER_PUSH):
        pipe.rpush(key, *[json.dumps(f, separators=(",", ":")) for f in frames[at : at + _FRAMES_PER_PUSH]])
    pipe.expire(key, ttl)
    pipe.execute()


def claim_progress(client: redis.Redis, keys: KeyLayout, job_id: str, interval_s: float) -> bool:
    """Whether a progress webhook may go now: at most one per ``interval_s`` per job, whichever worker asks (SET NX PX)."""
    return bool(client.set(keys.video_progress_sent(job_id), b"1", nx=True, px=max(1, int(interval_s * 1000))))


def drop_segments(client: redis.Redis, keys: KeyLayout, job_id: str, total: int) -> None:
    """Delete the segments once the frames are stored (the done set stays: late redeliveries stay idempotent)."""
    if total:
        client.delete(*[keys.video_segment(job_id, i) for i in range(total)])


async def frame_page(
    client: aioredis.Redis, keys: KeyLayout, job_id: str, offset: int, limit: int
) -> tuple[list[dict[str, Any]], int]:
    """Frames ``offset`` to ``offset + limit - 1`` of a finished job and the total stored."""
    async with client.pipeline(transaction=False) as pipe:
        pipe.lrange(keys.video_frames(job_id), offset, offset + limit - 1)
        pipe.llen(keys.video_frames(job_id))
        raws, total = await pipe.execute()
    return [json.loads(r) for r in raws], int(total)


async def frame_rows(client: aioredis.Redis, keys: KeyLayout, job_id: str) -> list[dict[str, Any]]:
    """Every stored frame of a finished job (the annotated video draws them all)."""
    return [json.loads(r) for r in await client.lrange(keys.video_frames(job_id), 0, -1)]
