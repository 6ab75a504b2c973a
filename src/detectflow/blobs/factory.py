"""open_blob_store: the blob store the settings name (``DETECTFLOW_STORAGE``)."""

from __future__ import annotations

from detectflow.blobs.base import BlobStore
from detectflow.config import Settings

__all__ = ["open_blob_store", "storage_dir"]


def storage_dir(settings: Settings):
    """The filesystem store's root: ``storage_dir``, else ``<state_dir>/blobs``."""
    return settings.storage_dir or settings.state_dir / "blobs"


def open_blob_store(settings: Settings, redis_client=None) -> BlobStore:
    """The configured store; the ``redis`` one uses ``redis_client`` (the process's synchronous client).

    Raises
    ------
    ValueError
        ``s3`` without a bucket, or ``redis`` without a client.
    """
    if settings.storage == "filesystem":
        from detectflow.blobs.filesystem import FilesystemBlobStore

        return FilesystemBlobStore(storage_dir(settings), fsync=settings.storage_fsync)
    if settings.storage == "s3":
        from detectflow.blobs.s3 import S3BlobStore, s3_client

        if not settings.storage_s3_bucket:
            raise ValueError("DETECTFLOW_STORAGE=s3 needs DETECTFLOW_STORAGE_S3_BUCKET")
        key = settings.storage_s3_access_key_id
        secret = settings.storage_s3_secret_access_key
        client = s3_client(
            endpoint=settings.storage_s3_endpoint,
            region=settings.storage_s3_region,
            access_key_id=key.get_secret_value() if key else None,
            secret_access_key=secret.get_secret_value() if secret else None,
            addressing_style=settings.storage_s3_addressing_style,
        )
        return S3BlobStore(client, settings.storage_s3_bucket, settings.storage_s3_prefix)
    if redis_client is None:
        raise ValueError("DETECTFLOW_STORAGE=redis needs the process's Redis client")
    from detectflow.blobs.redis import RedisBlobStore

    return RedisBlobStore(redis_client, settings.redis_prefix)
