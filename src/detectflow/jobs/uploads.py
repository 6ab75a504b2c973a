"""Uploads: a URL a client PUTs a large file to (pre-signed S3, or the API's own), then names in ``POST /v1/jobs``."""

from __future__ import annotations

import secrets
import time
from dataclasses import dataclass
from typing import BinaryIO

import redis.asyncio as aioredis

from detectflow.blobs.base import AsyncBlobs, upload_name
from detectflow.blobs.expiry import blob_expires_at
from detectflow.config import Settings
from detectflow.jobs.errors import DetectflowError, ErrorCode
from detectflow.keys import KeyLayout

__all__ = ["Upload", "UploadService"]


@dataclass(frozen=True, slots=True)
class Upload:
    """A place to PUT one file: its id (for ``upload_id``), the URL, and how long the URL holds."""

    upload_id: str
    url: str
    expires_in: int
    presigned: bool


class UploadService:
    """Creates uploads, takes the API-streamed ones, and hands an upload's bytes to a job (asyncio, the API's)."""

    def __init__(self, client: aioredis.Redis, blobs: AsyncBlobs, expiry, settings: Settings) -> None:
        self.client = client
        self.blobs = blobs
        self.expiry = expiry
        self.settings = settings
        self.keys = KeyLayout(settings.redis_prefix)

    async def create(self, tenant: str, base_url: str) -> Upload:
        """A new upload of ``tenant``: a pre-signed PUT URL on S3, else ``PUT <base_url>/v1/uploads/<id>``."""
        s = self.settings
        upload_id = secrets.token_hex(32)
        name = upload_name(upload_id)
        # the upload (used or not) expires like a job created now
        await self.expiry.mark([name], blob_expires_at(s.job_ttl_seconds, time.time()))
        await self.client.set(self.keys.upload(upload_id), tenant, ex=s.job_ttl_seconds)
        url = await self.blobs.presign_put(name, s.storage_upload_seconds)
        if url is not None:
            return Upload(upload_id, url, s.storage_upload_seconds, True)
        return Upload(upload_id, f"{base_url.rstrip('/')}/v1/uploads/{upload_id}", s.storage_upload_seconds, False)

    async def owned(self, upload_id: str, tenant: str) -> str:
        """The blob name of ``tenant``'s upload ``upload_id``; ``upload_not_found`` for any other."""
        owner = await self.client.get(self.keys.upload(upload_id)) if _is_id(upload_id) else None
        if owner is None or owner.decode() != tenant:  # another tenant's is unknown, exactly as an expired one
            raise DetectflowError(ErrorCode.upload_not_found, f"No upload {upload_id} (unknown or expired).")
        return upload_name(upload_id)

    async def receive(self, upload_id: str, tenant: str, stream: BinaryIO) -> int:
        """Store what ``stream`` (a file on disk) holds as the upload's bytes; returns its size."""
        name = await self.owned(upload_id, tenant)
        await self.blobs.put_stream(name, stream)
        return await self.blobs.size(name) or 0

    async def size(self, upload_id: str, tenant: str) -> int:
        """The byte length of ``tenant``'s upload, read without reading the upload.

        Raises
        ------
        DetectflowError
            ``upload_not_found`` (unknown, expired, another tenant's, or nothing PUT yet).
        """
        size = await self.blobs.size(await self.owned(upload_id, tenant))
        if size is None:
            raise DetectflowError(ErrorCode.upload_not_found, f"Nothing was uploaded to {upload_id} yet.")
        return size

    async def head(self, upload_id: str, tenant: str, length: int) -> bytes:
        """The first ``length`` bytes of ``tenant``'s upload (to tell a video by its magic bytes, unread).

        Raises
        ------
        DetectflowError
            ``upload_not_found``, as :meth:`size`.
        """
        data = await self.blobs.head(await self.owned(upload_id, tenant), length)
        if data is None:
            raise DetectflowError(ErrorCode.upload_not_found, f"Upload {upload_id} has expired.")
        return data

    async def hand_over(self, upload_id: str) -> None:
        """Give an upload to the job that names it by reference: no other job may take it, its bytes stay
        for the worker (which makes them the job's input, then deletes them)."""
        await self.client.delete(self.keys.upload(upload_id))

    async def take(self, upload_id: str, tenant: str, max_bytes: int) -> bytes:
        """The uploaded bytes, for a job of ``tenant``; its size is checked before any is read.

        Raises
        ------
        DetectflowError
            ``upload_not_found`` (unknown, expired, another tenant's, or nothing PUT yet);
            ``payload_too_large`` above ``max_bytes``.
        """
        name = await self.owned(upload_id, tenant)
        size = await self.blobs.size(name)
        if size is None:
            raise DetectflowError(ErrorCode.upload_not_found, f"Nothing was uploaded to {upload_id} yet.")
        if size > max_bytes:
            raise DetectflowError(
                ErrorCode.payload_too_large,
                f"The upload holds {size} bytes; this job takes at most {max_bytes}.",
                {"max_upload_bytes": max_bytes, "size": size},
            )
        data = await self.blobs.get(name)
        if data is None:
            raise DetectflowError(ErrorCode.upload_not_found, f"Upload {upload_id} has expired.")
        return data

    async def discard(self, upload_id: str) -> None:
        """Forget an upload a job took (its bytes live on as the job's content-addressed input)."""
        await self.client.delete(self.keys.upload(upload_id))
        await self.blobs.delete(upload_name(upload_id))


def _is_id(upload_id: str) -> bool:
    return len(upload_id) == 64 and all(c in "0123456789abcdef" for c in upload_id)
