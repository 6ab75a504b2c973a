"""API keys in Redis: create, list, revoke, and one script per request that authenticates and rate-limits."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import redis.asyncio as aioredis

from detectflow.auth.records import ApiKeyCreate, ApiKeyRecord, Scope, new_record
from detectflow.auth.tokens import digest_of, key_id_of, new_key
from detectflow.keys import KeyLayout

__all__ = ["KeyStore", "Verdict", "LAST_USED_EVERY_SECONDS"]

#: A key's last-used time is written at most this often (seconds): not one write per request.
LAST_USED_EVERY_SECONDS = 60

# KEYS[1] the key's record, KEYS[2] its token bucket. ARGV[1] the presented key's digest, ARGV[2]
# tokens to take (0: a request that is not rate-limited), ARGV[3] last-used interval (µs).
# Time is Redis's own, so every API replica shares one clock. Returns {0} for an unknown key,
# else {1, allowed 0|1, tokens left (-1: no limit), retry after (ms), the record's field/values}.
_AUTHENTICATE = """
local rec = redis.call('HGETALL', KEYS[1])
if #rec == 0 then return {0} end
local h = {}
for i = 1, #rec, 2 do h[rec[i]] = rec[i + 1] end
if h['digest'] ~= ARGV[1] then return {0} end
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
if now - tonumber(h['last_used_us'] or '0') > tonumber(ARGV[3]) then
  redis.call('HSET', KEYS[1], 'last_used_us', string.format('%.0f', now))
end
local allowed, left, retry = 1, -1, 0
local rate = tonumber(h['rate_limit_per_second'] or '0')
local cost = tonumber(ARGV[2])
if cost > 0 and rate > 0 then
  local burst = tonumber(h['burst'])
  local b = redis.call('HMGET', KEYS[2], 'tokens', 'ts')
  local tokens = tonumber(b[1]) or burst
  local ts = tonumber(b[2]) or now
  tokens = math.min(burst, tokens + (now - ts) / 1000000 * rate)
  if tokens >= cost then
    tokens = tokens - cost
  else
    allowed = 0
    retry = math.ceil((cost - tokens) / rate * 1000)
  end
  redis.call('HSET', KEYS[2], 'tokens', tostring(tokens), 'ts', string.format('%.0f', now))
  redis.call('PEXPIRE', KEYS[2], math.ceil(burst / rate * 1000) + 1000)
  left = math.floor(tokens)
end
return {1, allowed, left, retry, rec}
"""


@dataclass(frozen=True, slots=True)
class Verdict:
    """One request's authentication: the key (None: unknown), and for rate-limited requests the bucket."""

    key: ApiKeyRecord | None
    allowed: bool = True
    remaining: int | None = None
    retry_after_ms: int = 0


def _encode(record: ApiKeyRecord) -> dict[str, str]:
    out = {
        "id": record.id, "tenant": record.tenant, "name": record.name, "digest": record.digest,
        "scopes": json.dumps([s.value for s in record.scopes]), "created_at": record.created_at.isoformat(),
    }  # fmt: skip
    for name in ("rate_limit_per_second", "burst", "max_queued_jobs"):
        value = getattr(record, name)
        if value is not None:
            out[name] = str(value)
    return out


def _decode(raw: dict[bytes, bytes] | list[bytes]) -> ApiKeyRecord:
    if isinstance(raw, list):
        raw = dict(zip(raw[::2], raw[1::2], strict=True))
    data: dict[str, Any] = {k.decode(): v.decode() for k, v in raw.items()}
    data["scopes"] = json.loads(data["scopes"])
    used = data.pop("last_used_us", None)
    if used:
        data["last_used_at"] = datetime.fromtimestamp(int(used) / 1e6, UTC)
    return ApiKeyRecord.model_validate(data)


class KeyStore:
    """API keys of one key prefix (one pipeline), shared by every API replica."""

    def __init__(self, client: aioredis.Redis, prefix: str) -> None:
        self.client = client
        self.keys = KeyLayout(prefix)
        self._authenticate = client.register_script(_AUTHENTICATE)

    async def create(self, create: ApiKeyCreate, key: str | None = None) -> tuple[ApiKeyRecord, str]:
        """Store a new key (random unless ``key`` is given); returns its record and the key, shown once."""
        key = key or new_key()
        digest = digest_of(key)
        record = new_record(create, key_id_of(digest), digest)
        async with self.client.pipeline(transaction=True) as pipe:
            pipe.hset(self.keys.api_key(record.id), mapping=_encode(record))
            pipe.sadd(self.keys.api_keys(), record.id)
            await pipe.execute()
        return record, key

    async def ensure(self, key: str, tenant: str, name: str) -> ApiKeyRecord:
        """The record of a key given by configuration (the bootstrap admin key), created once."""
        digest = digest_of(key)
        raw = await self.client.hgetall(self.keys.api_key(key_id_of(digest)))
        if raw and raw.get(b"digest") == digest.encode():
            return _decode(raw)
        record, _ = await self.create(ApiKeyCreate(tenant=tenant, name=name, scopes=[Scope.admin]), key)
        return record

    async def list(self) -> list[ApiKeyRecord]:
        ids = sorted(m.decode() for m in await self.client.smembers(self.keys.api_keys()))
        async with self.client.pipeline(transaction=False) as pipe:
            for key_id in ids:
                pipe.hgetall(self.keys.api_key(key_id))
            raws = await pipe.execute()
        return sorted((_decode(r) for r in raws if r), key=lambda r: r.created_at)

    async def revoke(self, key_id: str) -> bool:
        """Delete a key: the next request with it is refused, on every replica. False if unknown."""
        async with self.client.pipeline(transaction=True) as pipe:
            pipe.delete(self.keys.api_key(key_id), self.keys.rate_bucket(key_id))
            pipe.srem(self.keys.api_keys(), key_id)
            removed, _ = await pipe.execute()
        return bool(removed)

    async def authenticate(self, key: str, cost: int = 0) -> Verdict:
        """Who ``key`` is, taking ``cost`` tokens from its bucket (one Redis round trip)."""
        digest = digest_of(key)
        key_id = key_id_of(digest)
        reply = await self._authenticate(
            keys=[self.keys.api_key(key_id), self.keys.rate_bucket(key_id)],
            args=[digest, cost, LAST_USED_EVERY_SECONDS * 1_000_000],
        )
        if not reply[0]:
            return Verdict(None)
        _, allowed, left, retry, raw = reply
        return Verdict(_decode(raw), bool(allowed), None if int(left) < 0 else int(left), int(retry))
