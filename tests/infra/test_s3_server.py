"""The S3 server of the test suite (versitygw, posix backend): the S3 calls detectflow relies on, for real."""

from __future__ import annotations

import hashlib
import os
import socket
import time
import uuid
from pathlib import Path

import httpx
import pytest
from botocore.exceptions import ClientError

from tests.support.s3 import S3Server

pytestmark = pytest.mark.s3

PART_BYTES = 5 * 1024 * 1024  # S3's minimum size of every part but the last


@pytest.fixture
def s3(s3_server: S3Server):
    return s3_server.client()


@pytest.fixture
def key_prefix() -> str:
    """A key prefix of this test's own in the shared bucket."""
    return f"t{uuid.uuid4().hex[:10]}/"


def _error_code(exc: ClientError) -> str:
    return exc.response["Error"]["Code"]


def test_s3_server_put_get_head_delete(s3_server: S3Server, s3, key_prefix: str) -> None:
    key = key_prefix + "input.png"
    body = os.urandom(100_000)
    put = s3.put_object(Bucket=s3_server.bucket, Key=key, Body=body, ContentType="image/png", Metadata={"job": "j1"})
    head = s3.head_object(Bucket=s3_server.bucket, Key=key)
    got = s3.get_object(Bucket=s3_server.bucket, Key=key)
    assert got["Body"].read() == body
    assert head["ContentLength"] == len(body) and head["ContentType"] == "image/png"
    assert head["Metadata"] == {"job": "j1"}
    assert put["ETag"] == head["ETag"] == f'"{hashlib.md5(body).hexdigest()}"'
    s3.delete_object(Bucket=s3_server.bucket, Key=key)
    with pytest.raises(ClientError) as missing:
        s3.head_object(Bucket=s3_server.bucket, Key=key)
    assert missing.value.response["ResponseMetadata"]["HTTPStatusCode"] == 404
    with pytest.raises(ClientError) as missing_get:
        s3.get_object(Bucket=s3_server.bucket, Key=key)
    assert _error_code(missing_get.value) == "NoSuchKey"


def test_s3_server_presigned_put_and_get_work_with_a_plain_http_client(s3_server: S3Server, s3, key_prefix: str) -> None:
    key = key_prefix + "upload.bin"
    body = os.urandom(300_000)
    put_url = s3.generate_presigned_url(
        "put_object", Params={"Bucket": s3_server.bucket, "Key": key, "ContentType": "application/octet-stream"},
        ExpiresIn=300,
    )  # fmt: skip
    assert "X-Amz-Signature=" in put_url and "X-Amz-Algorithm=AWS4-HMAC-SHA256" in put_url
    put = httpx.put(put_url, content=body, headers={"Content-Type": "application/octet-stream"}, timeout=30)
    assert put.status_code == 200, put.text
    get_url = s3.generate_presigned_url("get_object", Params={"Bucket": s3_server.bucket, "Key": key}, ExpiresIn=300)
    got = httpx.get(get_url, timeout=30)
    assert got.status_code == 200 and got.content == body
    # a tampered signature, or a URL for another key, is refused
    assert httpx.get(get_url.replace("X-Amz-Signature=", "X-Amz-Signature=0"), timeout=30).status_code == 403
    assert httpx.get(get_url.replace("upload.bin", "other.bin"), timeout=30).status_code == 403


def test_s3_server_presigned_url_expires(s3_server: S3Server, s3, key_prefix: str) -> None:
    key = key_prefix + "soon.bin"
    s3.put_object(Bucket=s3_server.bucket, Key=key, Body=b"x")
    url = s3.generate_presigned_url("get_object", Params={"Bucket": s3_server.bucket, "Key": key}, ExpiresIn=1)
    time.sleep(2.1)
    expired = httpx.get(url, timeout=30)
    assert expired.status_code == 403 and b"expired" in expired.content.lower()


def test_s3_server_multipart_upload_assembles_the_parts(s3_server: S3Server, s3, key_prefix: str) -> None:
    key = key_prefix + "video.mp4"
    parts = [os.urandom(PART_BYTES), os.urandom(PART_BYTES), os.urandom(1234)]
    upload = s3.create_multipart_upload(Bucket=s3_server.bucket, Key=key, ContentType="video/mp4")
    done = [
        {"PartNumber": n, "ETag": s3.upload_part(Bucket=s3_server.bucket, Key=key, UploadId=upload["UploadId"],
                                                 PartNumber=n, Body=data)["ETag"]}
        for n, data in enumerate(parts, start=1)
    ]  # fmt: skip
    listed = s3.list_parts(Bucket=s3_server.bucket, Key=key, UploadId=upload["UploadId"])
    assert [p["Size"] for p in listed["Parts"]] == [len(p) for p in parts]
    s3.complete_multipart_upload(
        Bucket=s3_server.bucket, Key=key, UploadId=upload["UploadId"], MultipartUpload={"Parts": done}
    )
    head = s3.head_object(Bucket=s3_server.bucket, Key=key)
    assert head["ContentLength"] == sum(map(len, parts))
    assert head["ETag"].strip('"').endswith("-3")  # S3's multipart ETag: md5 of the part md5s, dash, count
    assert s3.get_object(Bucket=s3_server.bucket, Key=key, Range=f"bytes={PART_BYTES - 2}-{PART_BYTES + 1}")[
        "Body"
    ].read() == parts[0][-2:] + parts[1][:2]


def test_s3_server_aborted_multipart_upload_leaves_nothing(s3_server: S3Server, s3, key_prefix: str) -> None:
    key = key_prefix + "aborted.bin"
    upload = s3.create_multipart_upload(Bucket=s3_server.bucket, Key=key)
    s3.upload_part(Bucket=s3_server.bucket, Key=key, UploadId=upload["UploadId"], PartNumber=1, Body=b"abc")
    s3.abort_multipart_upload(Bucket=s3_server.bucket, Key=key, UploadId=upload["UploadId"])
    uploads = s3.list_multipart_uploads(Bucket=s3_server.bucket, Prefix=key_prefix).get("Uploads", [])
    assert uploads == []
    assert s3.list_objects_v2(Bucket=s3_server.bucket, Prefix=key_prefix)["KeyCount"] == 0


def test_s3_server_lists_by_prefix_with_pagination(s3_server: S3Server, s3, key_prefix: str) -> None:
    keys = [f"{key_prefix}jobs/a/{i:02d}" for i in range(7)] + [f"{key_prefix}jobs/b/0", f"{key_prefix}other"]
    for key in keys:
        s3.put_object(Bucket=s3_server.bucket, Key=key, Body=key.encode())
    pages = s3.get_paginator("list_objects_v2").paginate(
        Bucket=s3_server.bucket, Prefix=f"{key_prefix}jobs/a/", PaginationConfig={"PageSize": 3}
    )
    listed = [o["Key"] for page in pages for o in page.get("Contents", [])]
    assert listed == sorted(keys[:7])
    tree = s3.list_objects_v2(Bucket=s3_server.bucket, Prefix=key_prefix, Delimiter="/")
    assert [p["Prefix"] for p in tree["CommonPrefixes"]] == [f"{key_prefix}jobs/"]
    assert [o["Key"] for o in tree["Contents"]] == [f"{key_prefix}other"]
    deleted = s3.delete_objects(Bucket=s3_server.bucket, Delete={"Objects": [{"Key": k} for k in keys]})
    assert len(deleted["Deleted"]) == len(keys)
    assert s3.list_objects_v2(Bucket=s3_server.bucket, Prefix=key_prefix)["KeyCount"] == 0


def test_s3_server_lifecycle_rules_are_kept_or_refused_as_declared(s3_server: S3Server, s3) -> None:
    # versitygw has no lifecycle engine (NotImplemented): with it blob expiry must be a sweeper;
    # MinIO (DETECTFLOW_S3_SERVER=minio) stores the rules. See docs/development.md.
    rules = [{"ID": "expire", "Status": "Enabled", "Filter": {"Prefix": "jobs/"}, "Expiration": {"Days": 1}}]
    if not s3_server.supports_lifecycle:
        with pytest.raises(ClientError) as refused:
            s3.put_bucket_lifecycle_configuration(Bucket=s3_server.bucket, LifecycleConfiguration={"Rules": rules})
        assert _error_code(refused.value) == "NotImplemented"
        return
    s3.put_bucket_lifecycle_configuration(Bucket=s3_server.bucket, LifecycleConfiguration={"Rules": rules})
    got = s3.get_bucket_lifecycle_configuration(Bucket=s3_server.bucket)["Rules"]
    assert [(r["ID"], r["Status"], r["Expiration"]["Days"]) for r in got] == [("expire", "Enabled", 1)]
    s3.delete_bucket_lifecycle(Bucket=s3_server.bucket)


def test_s3_server_refuses_wrong_credentials(s3_server: S3Server, key_prefix: str) -> None:
    import boto3

    bad = boto3.client(
        "s3", endpoint_url=s3_server.endpoint, region_name=s3_server.region,
        aws_access_key_id=s3_server.access_key, aws_secret_access_key="not-the-secret",
    )  # fmt: skip
    with pytest.raises(ClientError) as refused:
        bad.put_object(Bucket=s3_server.bucket, Key=key_prefix + "x", Body=b"x")
    assert _error_code(refused.value) == "SignatureDoesNotMatch"


def test_s3_server_keeps_credentials_off_the_command_line_and_stops_cleanly(tmp_path: Path) -> None:
    server = S3Server(tmp_path).start()
    pid = server.proc.pid
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
        environ = Path(f"/proc/{pid}/environ").read_bytes()
        assert server.secret_key.encode() not in cmdline and server.access_key.encode() not in cmdline
        assert f"={server.secret_key}".encode() in environ
        assert server.client().list_buckets()["Buckets"][0]["Name"] == server.bucket
    finally:
        server.stop()
    assert not Path(f"/proc/{pid}").exists()
    with pytest.raises(ProcessLookupError):
        os.killpg(pid, 0)
    with socket.socket() as s, pytest.raises(ConnectionRefusedError):  # nothing listens any more
        s.connect(("127.0.0.1", server.port))
