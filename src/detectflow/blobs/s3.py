"""Blobs in an S3 bucket (AWS S3 or any S3 API: MinIO, Ceph RGW, R2, versitygw) through boto3."""

from __future__ import annotations

from typing import Any, BinaryIO

from detectflow.blobs.base import check_name

__all__ = ["S3BlobStore", "s3_client"]

#: Attempts of one S3 call before it fails (botocore's standard retry mode).
DEFAULT_S3_MAX_ATTEMPTS = 3
#: Connect and read timeouts of an S3 call (seconds).
DEFAULT_S3_TIMEOUT_SECONDS = 30


def s3_client(
    *,
    endpoint: str = "",
    region: str = "",
    access_key_id: str | None = None,
    secret_access_key: str | None = None,
    addressing_style: str = "auto",
    max_pool_connections: int = 32,
) -> Any:
    """A boto3 S3 client; without keys, boto3's usual chain (``AWS_*`` variables, profiles, IAM roles) applies.

    ``AWS_ENDPOINT_URL_S3`` also sets the endpoint when ``endpoint`` is empty (boto3 reads it).
    """
    import boto3
    from botocore.config import Config

    config = Config(
        signature_version="s3v4",
        s3={"addressing_style": addressing_style},
        retries={"max_attempts": DEFAULT_S3_MAX_ATTEMPTS, "mode": "standard"},
        connect_timeout=DEFAULT_S3_TIMEOUT_SECONDS,
        read_timeout=DEFAULT_S3_TIMEOUT_SECONDS,
        max_pool_connections=max_pool_connections,
    )
    kwargs: dict[str, Any] = {"config": config}
    if endpoint:
        kwargs["endpoint_url"] = endpoint
    if region:
        kwargs["region_name"] = region
    if access_key_id and secret_access_key:
        kwargs |= {"aws_access_key_id": access_key_id, "aws_secret_access_key": secret_access_key}
    return boto3.session.Session().client("s3", **kwargs)


def _missing(exc: Exception) -> bool:
    code = getattr(exc, "response", {}).get("Error", {}).get("Code", "")
    return code in ("404", "NoSuchKey", "NotFound")


class S3BlobStore:
    """Blobs as objects ``<prefix><name>`` of ``bucket``.

    boto3's client is thread-safe, so one serves every thread of a worker or of the API's pool.
    Expiry is the sweeper's (``detectflow.blobs.expiry``) or, on AWS, a lifecycle rule on the prefix.
    """

    kind = "s3"

    def __init__(self, client: Any, bucket: str, prefix: str = "") -> None:
        self.client = client
        self.bucket = bucket
        self.prefix = prefix

    def key(self, name: str) -> str:
        """The object key of ``name``."""
        return self.prefix + check_name(name)

    def put(self, name: str, data: bytes) -> None:
        self.client.put_object(Bucket=self.bucket, Key=self.key(name), Body=data)

    def put_stream(self, name: str, stream: BinaryIO) -> None:
        self.client.upload_fileobj(stream, self.bucket, self.key(name))  # multipart past 8 MB, in chunks

    def get(self, name: str) -> bytes | None:
        from botocore.exceptions import ClientError

        try:
            return self.client.get_object(Bucket=self.bucket, Key=self.key(name))["Body"].read()
        except ClientError as exc:
            if _missing(exc):
                return None
            raise

    def head(self, name: str, length: int) -> bytes | None:
        from botocore.exceptions import ClientError

        if length <= 0:
            return b"" if self.exists(name) else None
        try:
            reply = self.client.get_object(Bucket=self.bucket, Key=self.key(name), Range=f"bytes=0-{length - 1}")
            return reply["Body"].read()[:length]
        except ClientError as exc:
            if _missing(exc):
                return None
            if exc.response.get("Error", {}).get("Code") == "InvalidRange":  # an empty object
                return b""
            raise

    def exists(self, name: str) -> bool:
        from botocore.exceptions import ClientError

        try:
            self.client.head_object(Bucket=self.bucket, Key=self.key(name))
            return True
        except ClientError as exc:
            if _missing(exc):
                return False
            raise

    def size(self, name: str) -> int | None:
        from botocore.exceptions import ClientError

        try:
            return int(self.client.head_object(Bucket=self.bucket, Key=self.key(name))["ContentLength"])
        except ClientError as exc:
            if _missing(exc):
                return None
            raise

    def delete(self, name: str) -> None:
        self.client.delete_object(Bucket=self.bucket, Key=self.key(name))

    def presign_put(self, name: str, expires_seconds: int) -> str | None:
        return self.client.generate_presigned_url(
            "put_object", Params={"Bucket": self.bucket, "Key": self.key(name)}, ExpiresIn=expires_seconds
        )

    def names(self) -> list[str]:
        """Every blob's name under the prefix (tests and the CLI)."""
        found: list[str] = []
        for page in self.client.get_paginator("list_objects_v2").paginate(Bucket=self.bucket, Prefix=self.prefix):
            found += [o["Key"][len(self.prefix) :] for o in page.get("Contents", [])]
        return sorted(found)

    def close(self) -> None:
        self.client.close()
