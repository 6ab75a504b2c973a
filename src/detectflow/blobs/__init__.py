"""Blob stores: where inputs and annotated outputs live (filesystem, S3, or Redis), under content-addressed names."""

from __future__ import annotations

from detectflow.blobs.base import AsyncBlobs, BlobStore, content_name, input_name, upload_name
from detectflow.blobs.expiry import AsyncBlobExpiry, BlobExpiry, blob_expires_at
from detectflow.blobs.factory import open_blob_store

__all__ = [
    "AsyncBlobExpiry",
    "AsyncBlobs",
    "BlobExpiry",
    "BlobStore",
    "blob_expires_at",
    "content_name",
    "input_name",
    "open_blob_store",
    "upload_name",
]
