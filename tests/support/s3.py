"""A real S3 server for tests: Versity's S3 gateway (posix backend) on 127.0.0.1, built by scripts/servers/build.sh.

    with S3Server(tmp_path) as s3:             # free port, temp data dir, generated credentials, one bucket
        s3.endpoint, s3.bucket, s3.access_key, s3.secret_key, s3.region
        s3.env()                               # AWS_* variables for a client process

Credentials reach the server through its environment, never its command line. ``DETECTFLOW_S3_SERVER=minio``
runs MinIO instead (built only by ``scripts/servers/build.sh --only minio``), to compare the two with the same
tests. Why versitygw: docs/development.md.
"""

from __future__ import annotations

import os
import secrets
from pathlib import Path

from detectflow.cli.up import free_port
from tests.support.servers import ServerError, ServerProcess, ensure_built

__all__ = ["S3Server", "DEFAULT_REGION", "DEFAULT_BUCKET"]

SERVERS = ("versitygw", "minio")
DEFAULT_SERVER = "versitygw"
DEFAULT_REGION = "us-east-1"
DEFAULT_BUCKET = "detectflow-test"
DEFAULT_START_TIMEOUT = 30.0  # seconds until the health endpoint answers
HEALTH_PATH = "/health"  # versitygw's, set by VGW_HEALTH


class S3Server:
    """An S3 server serving ``data_dir`` with one bucket created at start.

    Parameters
    ----------
    data_dir
        Holds the objects (``store/``) and the server's log.
    bucket, region
        The bucket created at start and the SigV4 region.
    server
        ``versitygw`` (posix backend) or ``minio``; default ``DETECTFLOW_S3_SERVER`` or versitygw.
    """

    def __init__(
        self, data_dir: Path, bucket: str = DEFAULT_BUCKET, region: str = DEFAULT_REGION, server: str | None = None
    ) -> None:
        self.server = server or os.environ.get("DETECTFLOW_S3_SERVER", DEFAULT_SERVER)
        if self.server not in SERVERS:
            raise ValueError(f"unknown S3 server {self.server!r}: one of {SERVERS}")
        self.data_dir = Path(data_dir)
        self.bucket = bucket
        self.region = region
        self.port = free_port()
        self.access_key = "DF" + secrets.token_hex(9).upper()
        self.secret_key = secrets.token_urlsafe(30)
        self.proc: ServerProcess | None = None

    @property
    def supports_lifecycle(self) -> bool:
        """Whether the server accepts bucket lifecycle (expiration) rules; versitygw answers NotImplemented."""
        return self.server == "minio"

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def env(self, base: dict[str, str] | None = None) -> dict[str, str]:
        """``base`` (default os.environ) plus the standard AWS variables pointing at this server."""
        env = dict(os.environ if base is None else base)
        env.update(
            AWS_ACCESS_KEY_ID=self.access_key,
            AWS_SECRET_ACCESS_KEY=self.secret_key,
            AWS_DEFAULT_REGION=self.region,
            AWS_REGION=self.region,
            AWS_ENDPOINT_URL_S3=self.endpoint,
        )
        return env

    def client(self):
        """A boto3 S3 client for this server (path-style addressing, SigV4)."""
        import boto3
        from botocore.config import Config

        return boto3.client(
            "s3",
            endpoint_url=self.endpoint,
            aws_access_key_id=self.access_key,
            aws_secret_access_key=self.secret_key,
            region_name=self.region,
            config=Config(signature_version="s3v4", s3={"addressing_style": "path"}, retries={"max_attempts": 2}),
        )

    def start(self, timeout: float = DEFAULT_START_TIMEOUT) -> S3Server:
        binary = ensure_built(self.server)
        store = self.data_dir / "store"
        store.mkdir(parents=True, exist_ok=True)
        env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": str(self.data_dir)}
        if self.server == "versitygw":
            env.update(
                ROOT_ACCESS_KEY_ID=self.access_key,
                ROOT_SECRET_ACCESS_KEY=self.secret_key,
                VGW_REGION=self.region,
                VGW_PORT=f"127.0.0.1:{self.port}",
                VGW_HEALTH=HEALTH_PATH,
            )
            args, health = [str(binary), "posix", str(store)], HEALTH_PATH
        else:
            env.update(
                MINIO_ROOT_USER=self.access_key,
                MINIO_ROOT_PASSWORD=self.secret_key,
                MINIO_REGION=self.region,
                MINIO_BROWSER="off",  # no console, so no second port
                MINIO_UPDATE="off",
            )
            args = [str(binary), "server", "--quiet", "--address", f"127.0.0.1:{self.port}", str(store)]
            health = "/minio/health/ready"
        self.proc = ServerProcess(args, env, self.data_dir / f"{self.server}.log")
        self.proc.wait_http(self.endpoint + health, timeout)
        try:
            self.client().create_bucket(Bucket=self.bucket)
        except Exception as exc:
            self.stop()
            raise ServerError(f"could not create bucket {self.bucket}: {exc}") from exc
        return self

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.stop()

    def __enter__(self) -> S3Server:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()
