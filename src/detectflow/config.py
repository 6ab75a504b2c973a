"""One validated settings object per process (env prefix ``DETECTFLOW_``)."""

from __future__ import annotations

import ipaddress
import json
from enum import StrEnum
from functools import lru_cache
from pathlib import Path
from typing import Annotated, Literal

from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

__all__ = ["Settings", "Task", "Pool", "get_settings", "settings_reference", "DEFAULT_CACHE_DIR"]

#: Where models, the embedded Redis state and build tools are cached.
DEFAULT_CACHE_DIR = Path.home() / ".cache" / "detectflow"

#: Longest a Redis call blocks by design (seconds): an idle worker's BLPOP on its wake-up list, which
#: lasts up to Dramatiq's worker timeout (1 s). Socket timeouts must exceed it.
LONGEST_REDIS_BLOCK_SECONDS = 1.0
#: Read/write timeout of every Redis call (seconds).
DEFAULT_REDIS_SOCKET_TIMEOUT_SECONDS = 10.0
#: Timeout of opening a Redis connection (seconds).
DEFAULT_REDIS_CONNECT_TIMEOUT_SECONDS = 5.0
#: Redis connections per pool in an API process (connections).
DEFAULT_REDIS_MAX_CONNECTIONS = 32
#: Open connections past which uvicorn answers 503 (connections).
DEFAULT_API_LIMIT_CONCURRENCY = 2048
#: Time for a request's line and headers to arrive (seconds).
DEFAULT_API_HEADER_TIMEOUT_SECONDS = 10.0
#: Time for a request's whole body to arrive (seconds).
DEFAULT_API_BODY_TIMEOUT_SECONDS = 60.0
#: Most bytes of a request line plus headers the API takes, complete or still arriving (bytes).
DEFAULT_API_MAX_HEADER_BYTES = 16 * 1024
#: Idle time before a keep-alive connection is closed (seconds).
DEFAULT_API_KEEPALIVE_SECONDS = 5
#: Seconds between two sweeps of expired blobs by an API process (seconds).
DEFAULT_STORAGE_SWEEP_INTERVAL_SECONDS = 60.0


class Task(StrEnum):
    """A task a client submits (see ``jobs.kinds`` for what each takes and returns and which pool serves it)."""

    face = "face"
    object = "object"
    embed = "embed"
    enrol = "enrol"
    recognize = "recognize"
    verify = "verify"
    match = "match"


class Pool(StrEnum):
    """A worker pool: what `detectflow worker --task` serves, with its queue ``detect.<pool>`` and its models."""

    face = "face"
    object = "object"
    recognition = "recognition"


class Settings(BaseSettings):
    """Every knob of the API, the workers and the CLI; the table in docs/configuration.md is made from it."""

    model_config = SettingsConfigDict(env_prefix="DETECTFLOW_", extra="ignore")

    # --- environment
    env: Literal["dev", "prod"] = Field("dev", description="`prod` refuses unsafe conveniences.")
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = Field("INFO", description="Log level of every process.")
    log_format: Literal["auto", "json", "text"] = Field(
        "auto", description="`auto`: JSON lines when stderr is not a terminal, text otherwise."
    )

    # --- redis
    redis_url: str = Field("redis://127.0.0.1:6379/0", description="Redis holding queues, jobs and results (and images with `storage=redis`).")
    redis_password: SecretStr | None = Field(
        None, description="Overrides the password in the URL (injected from a Secret on Kubernetes)."
    )
    redis_prefix: str = Field(
        "detectflow",
        pattern=r"^[A-Za-z0-9_.:-]+$",
        description="Prefix of every key (jobs, images, Dramatiq queues): pipelines sharing a Redis need distinct ones.",
    )
    redis_socket_timeout_seconds: float = Field(
        DEFAULT_REDIS_SOCKET_TIMEOUT_SECONDS,
        gt=LONGEST_REDIS_BLOCK_SECONDS,
        description="Read/write timeout of every Redis call, seconds; above the longest blocking call "
        "(a worker's wait on its wake-up list, 1 s).",
    )
    redis_connect_timeout_seconds: float = Field(
        DEFAULT_REDIS_CONNECT_TIMEOUT_SECONDS, gt=0, description="Timeout of opening a Redis connection, seconds."
    )
    redis_max_connections: int = Field(
        DEFAULT_REDIS_MAX_CONNECTIONS,
        ge=4,
        description="Redis connections per pool of an API process (its asyncio pool, its broker's pool); "
        "a call waits for a free one up to the socket timeout.",
    )

    # --- api
    api_host: str = Field("127.0.0.1", description="Bind address of `detectflow api` (0.0.0.0 in containers).")
    api_port: int = Field(8000, ge=1, le=65535, description="Port of `detectflow api`.")
    api_public_url: str = Field("", description="Base URL used in job links and webhooks; empty: derived from the request.")
    api_access_log: bool = Field(
        False,
        description="Log one line per request (method, path, status, duration, client; never headers, keys or query "
        "strings) on the `detectflow.access` logger.",
    )
    api_forwarded_allow_ips: str = Field(
        "",
        description="Comma-separated proxy IPs or networks whose X-Forwarded-For/-Proto headers uvicorn trusts "
        "(e.g. the ingress controller's pod network); empty: none, the headers are ignored.",
    )
    api_max_upload_bytes: int = Field(20 * 1024 * 1024, ge=1024, description="Largest accepted upload, bytes (413 `payload_too_large`).")
    api_max_image_pixels: int = Field(
        50_000_000,
        ge=1,
        description="Largest accepted width x height, read from the header (413 `image_too_large`) and "
        "checked again by the worker's decoder (job error `image_too_large`).",
    )
    api_annotated_cache_max_bytes: int = Field(
        8 * 1024 * 1024, ge=0, description="Largest annotated PNG kept in the blob store, bytes; bigger ones are rendered again each time."
    )
    api_max_queue_depth: int = Field(
        1000, ge=1, description="Unfinished jobs of a task at which POST answers 429 `queue_full`."
    )
    api_limit_concurrency: int = Field(
        DEFAULT_API_LIMIT_CONCURRENCY,
        ge=16,
        description="Open connections (or running requests) past which the API answers 503 at once; long polls count.",
    )
    api_header_timeout_seconds: float = Field(
        DEFAULT_API_HEADER_TIMEOUT_SECONDS, gt=0, description="A request's headers must arrive within this, seconds, or the connection is closed."
    )
    api_body_timeout_seconds: float = Field(
        DEFAULT_API_BODY_TIMEOUT_SECONDS, gt=0, description="A request's body must arrive within this, seconds (408 `request_timeout`)."
    )
    api_max_header_bytes: int = Field(
        DEFAULT_API_MAX_HEADER_BYTES, ge=1024, description="Most bytes of a request line plus headers, complete or still arriving (more: 400)."
    )
    api_keepalive_seconds: int = Field(
        DEFAULT_API_KEEPALIVE_SECONDS, ge=1, description="An idle keep-alive connection is closed after this, seconds."
    )
    api_worker_stale_seconds: float = Field(30.0, gt=0, description="A worker not seen for this long is not listed by /readyz.")
    api_require_workers: bool = Field(
        False, description="/readyz fails without a live worker per task (leave off with scale-to-zero)."
    )
    api_docs: bool = Field(True, description="Serve /docs and /openapi.json (they describe the API, not data).")
    api_metrics_port: int = Field(
        9464, ge=0, le=65535, description="Port of the API's Prometheus /metrics (not the API's port); 0: none."
    )

    # --- tenancy
    auth: Literal["enabled", "disabled"] = Field(
        "enabled",
        description="`disabled` serves every request as one tenant without keys: refused with env=prod or a "
        "non-loopback bind.",
    )
    admin_key: SecretStr | None = Field(
        None, description="An admin API key to create at start (`detectflow up` writes one to <state_dir>/admin.key)."
    )
    api_key: SecretStr | None = Field(
        None, description="The key CLI commands (`detect`, `keys`) send; unset: <state_dir>/admin.key if it exists."
    )
    admin_tenant: str = Field("default", pattern=r"^[a-z0-9][a-z0-9_.-]{0,62}$", description="Tenant of the admin key.")
    key_rate_limit_per_second: float = Field(
        20.0, gt=0, description="Default submissions per second of a new key (token bucket refill)."
    )
    key_burst: int = Field(40, ge=1, description="Default token bucket size of a new key.")
    key_max_queued_jobs: int = Field(1000, ge=1, description="Default unfinished jobs of a new key's tenant.")

    # --- jobs
    job_ttl_seconds: int = Field(
        24 * 3600, ge=1, description="How long a job, its image and its result are kept after it ends, seconds."
    )
    result_cache_ttl_seconds: int = Field(
        24 * 3600,
        ge=0,
        description="A tenant's job identical to one that succeeded this recently (input, task, model, options) is "
        "answered at once from its result (`cached: true`), seconds; 0 disables the cache.",
    )

    # --- storage
    storage: Literal["filesystem", "s3", "redis"] = Field(
        "filesystem",
        description="Where inputs and annotated images live: `filesystem` (one machine: under `storage_dir`), "
        "`s3` (any S3 API; what API and workers on several machines share), `redis` (beside the queues, as before).",
    )
    storage_dir: Path | None = Field(None, description="`filesystem` storage root; unset: <state_dir>/blobs.")
    storage_fsync: bool = Field(False, description="`filesystem`: fsync each blob before it is renamed into place.")
    storage_s3_bucket: str = Field("", description="`s3`: the bucket.")
    storage_s3_prefix: str = Field("", description="`s3`: prefix of every object key (e.g. `detectflow/`).")
    storage_s3_endpoint: str = Field(
        "", description="`s3`: endpoint URL of a non-AWS S3 service (MinIO, Ceph RGW, R2); empty: AWS (or AWS_ENDPOINT_URL_S3)."
    )
    storage_s3_region: str = Field("", description="`s3`: region; empty: AWS_REGION / AWS_DEFAULT_REGION.")
    storage_s3_addressing_style: Literal["auto", "path", "virtual"] = Field(
        "auto", description="`s3`: bucket in the path or in the host name; `path` for most self-hosted servers."
    )
    storage_s3_access_key_id: SecretStr | None = Field(
        None, description="`s3`: access key; unset: the standard AWS chain (AWS_ACCESS_KEY_ID, profiles, IAM roles)."
    )
    storage_s3_secret_access_key: SecretStr | None = Field(None, description="`s3`: secret key, with the access key.")
    storage_upload_max_bytes: int = Field(
        1024**3, ge=1024, description="Largest file `PUT /v1/uploads/{id}` takes (streamed to the blob store), bytes."
    )
    storage_upload_seconds: int = Field(
        900, ge=60, le=7 * 86400, description="How long an upload URL (pre-signed or the API's) may be used, seconds."
    )
    source_allow_http: bool = Field(
        False, description="Accept `source_url`s over plain http (https only by default)."
    )
    source_max_bytes: int = Field(
        20 * 1024 * 1024, ge=1024, description="Most bytes a worker reads from a `source_url` (job error `source_too_large`)."
    )
    source_timeout_seconds: float = Field(
        10.0, gt=0, description="A worker's whole fetch of a `source_url`, seconds (job error `source_unreachable`)."
    )
    storage_sweep_interval_seconds: float = Field(
        DEFAULT_STORAGE_SWEEP_INTERVAL_SECONDS,
        ge=0,
        description="How often each API process deletes blobs whose jobs expired, seconds; 0: never "
        "(run `detectflow blobs sweep`, or S3 lifecycle rules).",
    )


    job_capacity_wait_seconds: float = Field(
        0.0, ge=0, description="A queued job whose pool has had no live worker this long fails `no_capacity`, "
        "seconds; 0: held until a worker comes.",
    )

    # --- video
    video_max_duration_seconds: float = Field(
        600.0, gt=0, description="Longest video accepted, seconds of stream (`video_too_long`; at submit from the container)."
    )
    video_max_pixels: int = Field(
        1920 * 1080, ge=1, description="Largest video frame, width x height (413 `video_too_large`)."
    )
    video_max_frames: int = Field(
        3000, ge=1, description="Most frames one video job samples, after `max_frames` (`video_too_long`)."
    )
    video_max_sample_fps: float = Field(30.0, gt=0, description="Highest `sample_fps` a video job may ask for, frames/s.")
    video_segment_frames: int = Field(
        25, ge=1, description="Sampled frames per segment of a video job: each segment is one message of the task's queue."
    )
    video_max_segments: int = Field(200, ge=1, description="Most segments one video job is split into (longer segments beyond).")
    video_max_bytes: int = Field(
        512 * 1024 * 1024, ge=1024, description="Largest video by reference, bytes: an `upload_id` above "
        "`api_max_upload_bytes` (413 `payload_too_large` at submit) or a `source_url` video (`source_too_large`); "
        "the worker reads and probes it, never the API.",
    )

    # --- webhooks
    webhook_secret: SecretStr | None = Field(None, description="HMAC-SHA256 key signing webhooks; unset disables `webhook_url`.")
    webhook_max_attempts: int = Field(6, ge=1, le=20, description="Deliveries tried before a webhook is marked failed.")
    webhook_timeout_seconds: float = Field(5.0, gt=0, description="Timeout of one delivery.")
    webhook_backoff_seconds: float = Field(1.0, gt=0, description="First retry delay; doubles each attempt (capped at 60 s).")
    webhook_max_response_bytes: int = Field(
        64 * 1024, ge=0, description="Most bytes of a receiver's answer read, bytes; the rest is dropped unread."
    )
    webhook_allow_hosts: Annotated[list[str], NoDecode] = Field(
        [],
        description="Comma-separated hosts a webhook may reach on a private address (`*.example` for subdomains).",
    )
    webhook_allow_cidrs: Annotated[list[str], NoDecode] = Field(
        [],
        description="Comma-separated networks webhooks may reach although private, e.g. `10.0.0.0/8`; "
        "`detectflow up` on loopback opens `127.0.0.0/8,::1/128`.",
    )

    # --- worker
    worker_task: Pool = Field(Pool.face, description="Pool served by `detectflow worker` (its --task sets it).")
    worker_processes: int = Field(1, ge=1, description="Worker processes, each with its own model session.")
    worker_threads: int = Field(
        0, ge=0, description="Jobs at once per process (also the prefetch); 0: one per core the process may use."
    )
    worker_max_batch: int = Field(
        0,
        ge=0,
        description="Dynamic batching: most inputs of concurrent jobs (images; for the face embedder, face chips) "
        "run through a model at once; 1: off; 0: auto (8 on a GPU, off on CPU, where it measured no gain end to end: "
        "docs/performance.md).",
    )
    worker_max_batch_delay_ms: float = Field(
        2.0, ge=0, le=1000, description="Longest a job's input waits for others to fill a batch, ms."
    )
    worker_time_limit_seconds: int = Field(
        120, ge=1, description="Longest a job may run; SIGTERM waits this long for running jobs."
    )
    worker_max_retries: int = Field(3, ge=0, description="Retries of a job after a transient error (bad images are not retried).")
    worker_min_backoff_ms: int = Field(500, ge=0, description="First retry delay, ms (exponential).")
    worker_max_backoff_ms: int = Field(30_000, ge=0, description="Longest retry delay, ms.")
    worker_metrics_port: int = Field(
        9465,
        ge=0,
        le=65535,
        description="Port of a worker's Prometheus /metrics (shared by its processes); 0: none. "
        "`detectflow up` gives its N-th worker this port + N - 1.",
    )
    worker_metrics_host: str = Field(
        "127.0.0.1", description="Bind address of a worker's /metrics (0.0.0.0 in containers)."
    )
    worker_dead_after_seconds: float = Field(
        30.0, gt=0, description="A worker silent this long is dead: live workers requeue the jobs it held."
    )
    worker_max_deliveries: int = Field(
        3, ge=1, description="Deliveries of a job whose worker died mid-job before it fails `worker_crashed`."
    )
    worker_hard_deadline_grace_seconds: float = Field(
        10.0, gt=0, description="A job this long past the time limit (stuck in native code) kills its worker process."
    )
    worker_max_jobs_per_process: int = Field(
        0, ge=0, description="A worker process restarts gracefully after this many jobs; 0: never."
    )
    worker_max_rss_mb: int = Field(
        0, ge=0, description="A worker process restarts gracefully once its resident memory exceeds this, MiB; 0: never."
    )
    worker_detector_factory: str | None = Field(
        None, description="`module:function(task, settings)` building the detector instead of the model registry "
        "(the fault-injection tests' seam); unset: the configured model.",
    )
    worker_heartbeat_dir: Path | None = Field(
        None, description="Where each worker process touches a heartbeat file (the pod's probes read it); unset: none."
    )

    # --- models
    model_dir: Path = Field(DEFAULT_CACHE_DIR / "models", description="Where `detectflow models build` writes and workers read models.")
    face_model: str = Field(
        "retinaface-mnet025",
        description="Built-in name, a path to an ONNX file with its card, or `<postprocessor>:<path.onnx>`.",
    )
    object_model: str = Field("nanodet-g", description="As `face_model`, for the object task (e.g. `yolo:/models/yolo11n.onnx`).")
    embed_model: str = Field(
        "dlib-resnet-v1", description="Face embedder for recognition: a built-in name or an ONNX path with its card."
    )
    recognition_match_distance: float = Field(
        0.5, gt=0, le=2, description="Default distance at or under which a face is a gallery's subject (`match`)."
    )
    recognition_uncertain_distance: float = Field(
        0.6, gt=0, le=2, description="Default distance at or under which a face is `uncertain`; above: `unknown`."
    )
    recognition_max_match_batch: int = Field(
        1000, ge=1, le=100_000,
        description="Most embeddings `POST /v1/galleries/{g}/match` matches synchronously; more are a `match` job.",
    )
    recognition_max_match_job: int = Field(
        10_000, ge=1, le=1_000_000,
        description="Most embeddings one `match` job takes (413 `match_batch_too_large` above; the body limit applies too).",
    )
    recognition_max_enrol_images: int = Field(
        50, ge=1, le=1000, description="Most images one enrolment request carries."
    )
    recognition_ann_min_faces: int = Field(
        100_001, ge=1,
        description="Galleries with at least this many faces are searched with the IVF-Flat index (approximate); fewer: exact.",
    )
    device: Literal["auto", "cpu", "gpu"] = Field("auto", description="`auto` uses CUDA/TensorRT when present, else CPU.")
    intra_op_threads: int = Field(
        0, ge=0, description="onnxruntime intra-op threads per session; 0: the cores left per job thread (1 by default)."
    )
    cpu_precision: Literal["auto", "int8", "fp32"] = Field(
        "auto",
        description="CPU model file: `auto` the int8 one where its card says it passed the accuracy report, else fp32; "
        "`int8` the int8 one whenever the card has it; `fp32` always fp32.",
    )
    face_score_threshold: float = Field(0.5, ge=0, le=1, description="Faces below this score are dropped.")
    object_score_threshold: float = Field(0.35, ge=0, le=1, description="Objects below this score are dropped.")

    # --- local platform
    state_dir: Path = Field(DEFAULT_CACHE_DIR / "state", description="`detectflow up`: Redis append-only file, webhook secret.")
    redis_appendfsync: Literal["always", "everysec", "no"] = Field(
        "everysec",
        description="`detectflow up`: fsync of Redis's append-only file; everysec may lose ~1 s of writes on power loss, always none (slower writes).",
    )
    up_restart_backoff_seconds: float = Field(
        1.0, gt=0, description="`detectflow up`: delay before restarting a child that died; doubles with each recent crash."
    )
    up_restart_max_backoff_seconds: float = Field(30.0, gt=0, description="`detectflow up`: longest delay before a restart.")
    up_crash_loop_restarts: int = Field(
        5, ge=1, description="`detectflow up` stops everything when one child dies this many times within the window."
    )
    up_crash_loop_window_seconds: float = Field(
        120.0, gt=0, description="`detectflow up`: the window, s, of the crash-loop count (and of the backoff's doubling)."
    )

    @field_validator("webhook_secret", mode="before")
    @classmethod
    def _blank_secret_is_unset(cls, value: object) -> object:
        # an empty key would sign every webhook with a key anyone knows: treat it as no key
        raw = value.get_secret_value() if isinstance(value, SecretStr) else value
        return None if isinstance(raw, str) and not raw.strip() else value

    @field_validator("webhook_allow_hosts", "webhook_allow_cidrs", mode="before")
    @classmethod
    def _comma_separated(cls, value: object) -> object:
        if isinstance(value, str):
            if value.strip().startswith("["):  # a JSON list, as pydantic-settings reads lists elsewhere
                return json.loads(value)
            return [part.strip() for part in value.split(",") if part.strip()]
        return value

    @field_validator("webhook_allow_cidrs")
    @classmethod
    def _valid_networks(cls, value: list[str]) -> list[str]:
        return [str(ipaddress.ip_network(c, strict=False)) for c in value]

    @model_validator(mode="after")
    def _auth_off_only_in_dev(self) -> Settings:
        if self.auth == "disabled" and self.env == "prod":
            raise ValueError("DETECTFLOW_AUTH=disabled is refused with DETECTFLOW_ENV=prod")
        return self

    def check_bind(self, host: str) -> None:
        """Refuse to serve without keys on anything but loopback.

        Raises
        ------
        ValueError
            With ``auth`` disabled and ``host`` not a loopback address.
        """
        if self.auth == "disabled" and host not in ("127.0.0.1", "::1", "localhost"):
            raise ValueError(f"DETECTFLOW_AUTH=disabled is refused on {host}: only on a loopback address")

    def model_for(self, task: Task) -> str:
        """Model name or path configured for ``task``."""
        return self.object_model if task == Task.object else self.face_model

    def score_threshold_for(self, task: Task) -> float:
        """Score threshold configured for ``task``."""
        return self.object_score_threshold if task == Task.object else self.face_score_threshold


@lru_cache
def get_settings() -> Settings:
    """The process-wide settings, read from the environment once."""
    return Settings()


def settings_reference() -> str:
    """A markdown table of every setting: variable, default, meaning."""
    rows = ["| variable | default | meaning |", "| --- | --- | --- |"]
    for name, field in Settings.model_fields.items():
        default = field.default
        if isinstance(default, Path):
            default = str(default).replace(str(Path.home()), "~")
        shown = "(unset)" if default is None else f"`{default}`" if default != "" else '`""`'
        rows.append(f"| `DETECTFLOW_{name.upper()}` | {shown} | {field.description} |")
    return "\n".join(rows)


if __name__ == "__main__":
    print(settings_reference())
