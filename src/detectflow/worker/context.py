"""Per-process worker state: settings, job and blob stores, the kind served, its models (loaded once, before consuming)."""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from typing import Any


from detectflow.blobs.base import BlobStore, input_name
from detectflow.blobs.expiry import BlobExpiry
from detectflow.config import Pool, Settings
from detectflow.detectors.base import Detector
from detectflow.jobs.kinds import JobKind, kind_of
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
        job = self._take_started(job_id) or self.store.get(job_id)
        if job is None or self.blobs is None:
            return job, None
        if job.source_url and not job.image_sha256:
            return job, self._fetch(job)
        if job.upload_id and not job.image_sha256:
            return job, self._take_upload(job)
        return job, self.blobs.get(input_name(job.image_sha256))

    def _fetch(self, job: JobRecord) -> bytes:
        from detectflow.sources import fetch_source
        from detectflow.video.container import sniff_container
        from detectflow.webhooks import TargetPolicy

        s = self.settings
        policy = TargetPolicy.of(s.webhook_allow_hosts, s.webhook_allow_cidrs)
        if "video" in kind_of(job.task).media:  # a video's cap is its own, decided from the first bytes
            cap, limit_for = max(s.source_max_bytes, s.video_max_bytes), (
                lambda head: s.video_max_bytes if sniff_container(head) else s.source_max_bytes
            )
        else:
            cap, limit_for = s.source_max_bytes, None
        data = fetch_source(
            job.source_url, policy, timeout=s.source_timeout_seconds, max_bytes=cap, limit_for=limit_for
        )
        return self._keep_input(job, data)

    def _take_upload(self, job: JobRecord) -> bytes:
        """A video upload the API handed over unread: the worker makes it the job's content-addressed input."""
        from detectflow.blobs.base import upload_name
        from detectflow.jobs.errors import DetectflowError, ErrorCode

        name, limit = upload_name(job.upload_id), self.settings.video_max_bytes
        size = self.blobs.size(name)
        if size is not None and size > limit:  # PUT again (a pre-signed URL) after the API checked it
            raise DetectflowError(
                ErrorCode.payload_too_large, f"The upload holds {size} bytes; a video takes at most {limit}.",
                {"max_video_bytes": limit, "size": size},
            )  # fmt: skip
        data = self.blobs.get(name) if size is not None else None
        if data is None:
            raise DetectflowError(ErrorCode.image_expired, "The job's upload expired before it was processed.")
        try:
            kept = self._keep_input(job, data)
        except DetectflowError:  # not a video: the job fails for good, and its upload with it
            self.blobs.delete(name)
            raise
        self.blobs.delete(name)  # the job's input now holds it
        return kept

    def _keep_input(self, job: JobRecord, data: bytes) -> bytes:
        """Store fetched or taken bytes as the job's input (by SHA-256) and learn its media from them.

        Raises
        ------
        DetectflowError
            ``unsupported_media_type`` for an upload by reference that is no video; ``validation_error``
            for video options on an image.
        """
        import hashlib

        from detectflow.blobs.expiry import blob_expires_at
        from detectflow.jobs.errors import DetectflowError, ErrorCode, video_options_on_image
        from detectflow.video.container import sniff_container

        s = self.settings
        video = sniff_container(data) is not None and "video" in kind_of(job.task).media
        if job.upload_id and not video:
            raise DetectflowError(
                ErrorCode.unsupported_media_type,
                f"An upload above {s.api_max_upload_bytes} bytes (DETECTFLOW_API_MAX_UPLOAD_BYTES) must be a video "
                f"the {job.task.value} task takes.",
            )
        if job.video_options is not None and not video:
            raise video_options_on_image()
        sha = hashlib.sha256(data).hexdigest()
        name = input_name(sha)
        if self.expiry is not None:
            self.expiry.mark([name], blob_expires_at(s.job_ttl_seconds, job.created_at.timestamp()))
        self.blobs.put(name, data)
        self.store.set_input(job.id, sha, "video" if video else None)
        job.image_sha256 = sha
        if video:
            job.media = "video"
        return data

    def started(self, job: JobRecord | None) -> None:
        """Keep the record the start of this thread's delivery returned, for :meth:`load` (None forgets it)."""
        self._local.started = job

    def _take_started(self, job_id: str) -> JobRecord | None:
        job, self._local.started = getattr(self._local, "started", None), None
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
