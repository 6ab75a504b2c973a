"""Per-process worker state: settings, job and blob stores, the kind served, its models (loaded once, before consuming)."""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from typing import Any


from detectflow.blobs.base import BlobStore, input_name
from detectflow.blobs.expiry import BlobExpiry
from detectflow.config import Pool, Settings
from detectflow.detectors.base import Detector
from detectflow.jobs.kinds import JobKind
from detectflow.jobs.records import JobRecord
from detectflow.jobs.stores.redis import RedisJobStore
from detectflow.worker.tasks.base import Outcome

__all__ = ["WorkerContext"]


@dataclass
class WorkerContext:
    settings: Settings
    store: RedisJobStore
    kind: JobKind
    detector: Detector | None = None
    #: The face embedder (recognition pool only): an ``OnnxFaceEmbedder``.
    embedder: Any = None
    #: The galleries' embedding matrices, refreshed by version (recognition pool only): a ``GalleryCache``.
    galleries: Any = None
    worker_id: str = ""
    #: The actor that runs one segment of a video job (declared by actors.declare_segment_actor).
    segment_actor: Any = None
    #: The actor that delivers a running video job's progress webhook (declared by actors.declare_segment_actor).
    progress_actor: Any = None
    #: Where the jobs' inputs are (the settings' blob store).
    blobs: BlobStore | None = None
    #: When blobs expire (the sweeper's set), one per process.
    expiry: BlobExpiry | None = None
    #: Per worker thread: the outcome the actor hands to the JobLifecycle middleware.
    #: (Returning it would make Dramatiq warn that no Results backend keeps it.)
    _local: threading.local = field(default_factory=threading.local)

    def load(self, job_id: str) -> tuple[JobRecord | None, bytes | None]:
        """A job's record (Redis) and its input (the blob store, or its ``source_url``); None for what is gone.

        A fetched source is kept as the job's content-addressed input (for its annotated image).

        Raises
        ------
        DetectflowError
            ``source_unreachable`` or ``source_too_large`` for a source that cannot be fetched.
        """
        job = self.store.get(job_id)
        self._local.job = job  # the job's end re-marks its input blob from this record (no second read)
        if job is None or self.blobs is None:
            return job, None
        if job.source_url and not job.image_sha256:
            return job, self._fetch(job)
        return job, self.blobs.get(input_name(job.image_sha256))

    def _fetch(self, job: JobRecord) -> bytes:
        import hashlib

        from detectflow.blobs.expiry import blob_expires_at
        from detectflow.sources import fetch_source
        from detectflow.webhooks import TargetPolicy

        s = self.settings
        policy = TargetPolicy.of(s.webhook_allow_hosts, s.webhook_allow_cidrs)
        data = fetch_source(job.source_url, policy, timeout=s.source_timeout_seconds, max_bytes=s.source_max_bytes)
        sha = hashlib.sha256(data).hexdigest()
        name = input_name(sha)
        if self.expiry is not None:
            self.expiry.mark([name], blob_expires_at(s.job_ttl_seconds, job.created_at.timestamp()))
        self.blobs.put(name, data)
        self.store.set_input(job.id, sha)
        job.image_sha256 = sha
        return data

    def loaded_job(self, job_id: str) -> JobRecord | None:
        """The record this thread's last :meth:`load` read, if it is ``job_id``'s (and forget it)."""
        job, self._local.job = getattr(self._local, "job", None), None
        return job if job is not None and job.id == job_id else None

    def hand_over(self, outcome: Outcome) -> None:
        self._local.outcome = outcome

    def take_outcome(self) -> Outcome | None:
        outcome, self._local.outcome = getattr(self._local, "outcome", None), None
        return outcome

    @property
    def needs_embedder(self) -> bool:
        """Whether the pool served embeds faces (it loads the embedder beside the face detector)."""
        return self.kind.served_by is Pool.recognition

    def require_embedder(self):
        if self.embedder is None:
            raise RuntimeError("the embedder is not loaded: the worker has not booted")
        return self.embedder

    def require_detector(self) -> Detector:
        if self.detector is None:
            raise RuntimeError("the detector is not loaded: the worker has not booted")
        return self.detector
