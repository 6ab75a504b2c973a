"""The blob store protocol (synchronous), its asyncio facade for the API, and the content-addressed names."""

from __future__ import annotations

import hashlib
import re
from typing import BinaryIO, Protocol

from anyio import to_thread

__all__ = [
    "INPUT_PREFIX",
    "BlobStore",
    "AsyncBlobs",
    "BlobStoreUnavailable",
    "input_name",
    "content_name",
    "check_name",
    "upload_name",
]


class BlobStoreUnavailable(Exception):
    """The blob store failed a call (disk error, S3 unreachable or refusing): the API answers 503."""


def _store_errors() -> tuple[type[BaseException], ...]:
    errors: list[type[BaseException]] = [OSError]
    try:
        from botocore.exceptions import BotoCoreError, ClientError

        errors += [BotoCoreError, ClientError]
    except ImportError:  # no s3 extra: no S3 store either
        pass
    return tuple(errors)

_NAME = re.compile(r"^[a-z]+/[0-9a-f]{64}(\.[a-z0-9]+)?$")


def upload_name(upload_id: str) -> str:
    """The blob a client uploads to (``POST /v1/uploads``): ``uploads/<upload id>`` (64 random hex digits)."""
    return check_name(f"uploads/{upload_id}")


#: Where inputs are kept: ``input_name`` is this prefix and the input's SHA-256.
INPUT_PREFIX = "inputs/"


def input_name(sha256: str) -> str:
    """The blob name of an input whose SHA-256 (hex) is ``sha256``: ``inputs/<sha256>``."""
    return check_name(f"{INPUT_PREFIX}{sha256}")


def content_name(group: str, data: bytes, suffix: str = "") -> str:
    """A content-addressed name ``<group>/<sha256 of data><suffix>``, e.g. ``annotated/<hex>.png``."""
    return check_name(f"{group}/{hashlib.sha256(data).hexdigest()}{suffix}")


def check_name(name: str) -> str:
    """``name`` if it is a blob name (``<group>/<64 hex>[.ext]``): nothing else reaches a path or a key.

    Raises
    ------
    ValueError
        For anything else (a path traversal, an empty or foreign name).
    """
    if not _NAME.match(name):
        raise ValueError(f"not a blob name: {name!r}")
    return name


class BlobStore(Protocol):
    """Named, immutable byte objects. Synchronous: workers call it directly, the API through :class:`AsyncBlobs`.

    A name is content-addressed, so putting a name again writes the same bytes: every operation is
    idempotent and safe from several processes at once.
    """

    #: ``filesystem``, ``s3`` or ``redis``.
    kind: str

    def put(self, name: str, data: bytes) -> None:
        """Store ``data`` under ``name`` (atomically: readers see all of it or nothing)."""
        ...

    def put_stream(self, name: str, stream: BinaryIO) -> None:
        """Store what ``stream`` holds under ``name``, read in chunks (never whole in memory)."""
        ...

    def get(self, name: str) -> bytes | None:
        """The bytes under ``name``, or None if there are none."""
        ...

    def head(self, name: str, length: int) -> bytes | None:
        """The first ``length`` bytes under ``name`` (fewer for a shorter blob), or None if there is none."""
        ...

    def exists(self, name: str) -> bool: ...

    def size(self, name: str) -> int | None:
        """The byte length of ``name``, or None if there is no such blob (read without reading the blob)."""
        ...

    def delete(self, name: str) -> None:
        """Remove ``name``; a missing name is not an error."""
        ...

    def presign_put(self, name: str, expires_seconds: int) -> str | None:
        """A URL a client may PUT the bytes of ``name`` to, or None if the store has none (not S3)."""
        ...

    def close(self) -> None: ...


class AsyncBlobs:
    """The API's view of a :class:`BlobStore`: each call runs in a worker thread, off the event loop.

    One synchronous implementation per backend (boto3's client is thread-safe; file I/O and a
    blocking Redis call are what threads are for) instead of a second, asyncio copy of each: the
    API makes one or two blob calls per request, which the thread pool absorbs.
    """

    def __init__(self, store: BlobStore) -> None:
        self.store = store
        self.kind = store.kind
        self._errors = _store_errors()

    async def _run(self, call, *args):
        try:
            return await to_thread.run_sync(call, *args)
        except self._errors as exc:  # the store's own failures, not a bad name (ValueError stays a bug)
            raise BlobStoreUnavailable(f"{type(exc).__name__}: {exc}") from exc

    async def put(self, name: str, data: bytes) -> None:
        await self._run(self.store.put, name, data)

    async def put_stream(self, name: str, stream: BinaryIO) -> None:
        await self._run(self.store.put_stream, name, stream)

    async def get(self, name: str) -> bytes | None:
        return await self._run(self.store.get, name)

    async def head(self, name: str, length: int) -> bytes | None:
        return await self._run(self.store.head, name, length)

    async def exists(self, name: str) -> bool:
        return await self._run(self.store.exists, name)

    async def size(self, name: str) -> int | None:
        return await self._run(self.store.size, name)

    async def delete(self, name: str) -> None:
        await self._run(self.store.delete, name)

    async def presign_put(self, name: str, expires_seconds: int) -> str | None:
        return await self._run(self.store.presign_put, name, expires_seconds)

    def close(self) -> None:
        self.store.close()
