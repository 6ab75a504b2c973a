"""One validated settings object per process (env prefix ``DETECTFLOW_``)."""

from __future__ import annotations

from enum import StrEnum
from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

__all__ = ["Settings", "Task", "get_settings", "DEFAULT_CACHE_DIR"]

#: Where models, the embedded Redis state and build tools are cached.
DEFAULT_CACHE_DIR = Path.home() / ".cache" / "detectflow"


class Task(StrEnum):
    """A detection task; each task has its own queue and worker pool."""

    face = "face"
    object = "object"

    @property
    def queue_name(self) -> str:
        """Dramatiq queue of this task (``detect.<task>``)."""
        return f"detect.{self.value}"


class Settings(BaseSettings):
    """Every knob of the API, the workers and the CLI; documented in docs/configuration.md."""

    model_config = SettingsConfigDict(env_prefix="DETECTFLOW_", extra="ignore")

    # --- environment -----------------------------------------------------------------
    env: Literal["dev", "prod"] = "dev"
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    log_format: Literal["auto", "json", "text"] = "auto"

    # --- redis -------------------------------------------------------------------------
    redis_url: str = "redis://127.0.0.1:6379/0"
    #: Overrides the password in ``redis_url`` (injected from a Secret on Kubernetes).
    redis_password: SecretStr | None = None
    #: Prefix of every Redis key (jobs, images, Dramatiq queues). Pipelines sharing one Redis
    #: must use different prefixes.
    redis_prefix: str = Field("detectflow", pattern=r"^[A-Za-z0-9_.:-]+$")

    # --- api ---------------------------------------------------------------------------
    api_host: str = "127.0.0.1"
    api_port: int = Field(8000, ge=1, le=65535)
    #: Public base URL used in job links; empty means "derive from the request".
    api_public_url: str = ""
    api_max_upload_bytes: int = Field(20 * 1024 * 1024, ge=1024)
    #: Decoded pixel count above which an image is refused (decompression bombs).
    api_max_image_pixels: int = Field(50_000_000, ge=1)
    #: Unfinished messages of a task (HLEN of its ``.msgs`` hash) at which POST answers 429.
    api_max_queue_depth: int = Field(1000, ge=1)
    #: Workers whose heartbeat is older than this are not counted by /readyz (seconds).
    api_worker_stale_seconds: float = Field(30.0, gt=0)
    #: Whether /readyz requires at least one live worker.
    api_require_workers: bool = False

    # --- jobs --------------------------------------------------------------------------
    #: Time a job record, its image and its result are kept (seconds).
    job_ttl_seconds: int = Field(24 * 3600, ge=1)

    # --- webhooks ----------------------------------------------------------------------
    webhook_secret: SecretStr | None = None
    webhook_max_attempts: int = Field(6, ge=1, le=20)
    webhook_timeout_seconds: float = Field(5.0, gt=0)
    webhook_backoff_seconds: float = Field(1.0, gt=0)
    #: Allow webhook URLs that resolve to loopback/private addresses (tests, single machine).
    webhook_allow_private: bool = True

    # --- worker ------------------------------------------------------------------------
    worker_task: Task = Task.face
    worker_processes: int = Field(1, ge=1)
    worker_threads: int = Field(1, ge=1)
    #: Longest a single job may run (seconds); pods get a grace period above it.
    worker_time_limit_seconds: int = Field(120, ge=1)
    worker_max_retries: int = Field(3, ge=0)
    worker_min_backoff_ms: int = Field(500, ge=0)
    worker_max_backoff_ms: int = Field(30_000, ge=0)
    #: Messages held by a worker that has not beaten its heartbeat for this long are requeued.
    worker_dead_after_seconds: float = Field(30.0, gt=0)

    # --- models ------------------------------------------------------------------------
    model_dir: Path = DEFAULT_CACHE_DIR / "models"
    #: Built-in model name or path to an ONNX file (a model card beside it, ``<file>.json``).
    face_model: str = "retinaface-mnet025"
    object_model: str = "nanodet-g"
    #: onnxruntime device: auto picks CUDA when present.
    device: Literal["auto", "cpu", "gpu"] = "auto"
    intra_op_threads: int = Field(0, ge=0)
    face_score_threshold: float = Field(0.5, ge=0, le=1)
    object_score_threshold: float = Field(0.35, ge=0, le=1)

    # --- local platform ----------------------------------------------------------------
    state_dir: Path = DEFAULT_CACHE_DIR / "state"

    @model_validator(mode="after")
    def _refuse_unsafe_prod(self) -> Settings:
        if self.env == "prod" and self.webhook_allow_private:
            # In production a webhook must not be able to reach the cluster's own network.
            object.__setattr__(self, "webhook_allow_private", False)
        return self

    def model_for(self, task: Task) -> str:
        """Model name or path configured for ``task``."""
        return self.face_model if task is Task.face else self.object_model

    def score_threshold_for(self, task: Task) -> float:
        """Score threshold configured for ``task``."""
        return self.face_score_threshold if task is Task.face else self.object_score_threshold


@lru_cache
def get_settings() -> Settings:
    """The process-wide settings, read from the environment once."""
    return Settings()
