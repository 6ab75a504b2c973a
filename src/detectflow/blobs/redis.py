"""Blobs as Redis strings: today's layout (images beside the queues), kept for small setups and as the bench baseline."""

from __future__ import annotations

from typing import BinaryIO

import redis

from detectflow.blobs.base import check_name

__all__ = ["RedisBlobStore"]


class RedisBlobStore:
    """Blobs as keys ``<prefix>:blob:<name>``; every byte counts against Redis's memory, as before this seam.

    Redis cannot take a stream, so ``put_stream`` reads it whole: use a filesystem or S3 store for
    large inputs.
    """

    kind = "redis"

    def __init__(self, client: redis.Redis, prefix: str) -> None:
        self.client = client
        self.prefix = prefix

    def key(self, name: str) -> str:
        return f"{self.prefix}:blob:{check_name(name)}"

    def put(self, name: str, data: bytes) -> None:
        self.client.set(self.key(name), data)

    def put_stream(self, name: str, stream: BinaryIO) -> None:
        self.put(name, stream.read())

    def get(self, name: str) -> bytes | None:
        return self.client.get(self.key(name))

    def head(self, name: str, length: int) -> bytes | None:
        key = self.key(name)
        pipe = self.client.pipeline(transaction=False)
        pipe.exists(key)
        pipe.getrange(key, 0, max(0, length - 1))
        present, data = pipe.execute()
        return (data if length > 0 else b"") if present else None

    def exists(self, name: str) -> bool:
        return bool(self.client.exists(self.key(name)))

    def size(self, name: str) -> int | None:
        key = self.key(name)
        pipe = self.client.pipeline(transaction=False)
        pipe.exists(key)
        pipe.strlen(key)
        present, length = pipe.execute()
        return int(length) if present else None

    def delete(self, name: str) -> None:
        self.client.delete(self.key(name))

    def presign_put(self, name: str, expires_seconds: int) -> str | None:
        return None

    def names(self) -> list[str]:
        start = len(self.prefix) + len(":blob:")
        return sorted(k.decode()[start:] for k in self.client.scan_iter(f"{self.prefix}:blob:*"))

    def close(self) -> None:
        pass
