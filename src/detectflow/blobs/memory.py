"""An in-memory BlobStore for fast unit tests of the service (beside the filesystem, S3 and Redis ones they stand for)."""

from __future__ import annotations

from typing import BinaryIO

from detectflow.blobs.base import check_name

__all__ = ["MemoryBlobStore"]


class MemoryBlobStore:
    """Blobs in a dict; ``puts`` counts writes."""

    kind = "memory"

    def __init__(self) -> None:
        self.blobs: dict[str, bytes] = {}
        self.puts = 0

    def put(self, name: str, data: bytes) -> None:
        self.blobs[check_name(name)] = bytes(data)
        self.puts += 1

    def put_stream(self, name: str, stream: BinaryIO) -> None:
        self.put(name, stream.read())

    def get(self, name: str) -> bytes | None:
        return self.blobs.get(name)

    def head(self, name: str, length: int) -> bytes | None:
        data = self.blobs.get(name)
        return None if data is None else data[:length]

    def exists(self, name: str) -> bool:
        return name in self.blobs

    def size(self, name: str) -> int | None:
        return len(self.blobs[name]) if name in self.blobs else None

    def delete(self, name: str) -> None:
        self.blobs.pop(name, None)

    def presign_put(self, name: str, expires_seconds: int) -> str | None:
        return None

    def names(self) -> list[str]:
        return sorted(self.blobs)

    def close(self) -> None:
        pass
