"""The Redis key layout: every key and queue name detectflow and its Dramatiq broker use (pure, no client)."""

from __future__ import annotations

from dataclasses import dataclass

__all__ = [
    "DEFAULT_PREFIX",
    "KeyLayout",
    "detect_queue",
    "webhook_queue",
    "pipeline_prefix",
]

#: Key prefix (and Dramatiq namespace) of `detectflow up` and of a bare `detectflow api`/`worker`.
DEFAULT_PREFIX = "detectflow"


def detect_queue(task: str) -> str:
    """Dramatiq queue of a task's jobs: ``detect.<task>``."""
    return f"detect.{task}"


def webhook_queue(task: str) -> str:
    """Dramatiq queue of a task's webhook deliveries: ``webhook.<task>``."""
    return f"webhook.{task}"


def pipeline_prefix(namespace: str, name: str) -> str:
    """Key prefix of one DetectionPipeline: ``detectflow:<namespace>:<name>``."""
    return f"{DEFAULT_PREFIX}:{namespace}:{name}"


@dataclass(frozen=True, slots=True)
class KeyLayout:
    """Every Redis key under one prefix; the prefix is also the Dramatiq broker's namespace.

    Job keys are ours; the queue keys are Dramatiq's own layout (``<ns>:<queue>``, ``.msgs``,
    ``.DQ``...), spelled here so that the API, the workers, the operator (status, KEDA triggers)
    and the CLI read the same keys.
    """

    prefix: str = DEFAULT_PREFIX

    # --- jobs ------------------------------------------------------------------------
    def job(self, job_id: str) -> str:
        """Hash: the job record."""
        return f"{self.prefix}:job:{job_id}"

    def annotated(self, job_id: str) -> str:
        """String: the blob name of the rendered annotated PNG (cache)."""
        return f"{self.prefix}:job:{job_id}:annotated"

    def video_plan(self, job_id: str) -> str:
        """String: a video job's plan (stream, sampled frames of each segment), JSON."""
        return f"{self.prefix}:job:{job_id}:video:plan"

    def video_segment(self, job_id: str, index: int) -> str:
        """String: one finished segment of a video job (its frames and timings), JSON."""
        return f"{self.prefix}:job:{job_id}:video:segment:{index}"

    def video_segments_done(self, job_id: str) -> str:
        """Set: indices of a video job's finished segments (the merge starts when it is full)."""
        return f"{self.prefix}:job:{job_id}:video:done"

    def video_progress_sent(self, job_id: str) -> str:
        """String with a TTL: set while a video job's last progress webhook is younger than its interval."""
        return f"{self.prefix}:job:{job_id}:video:progress"

    def video_frames(self, job_id: str) -> str:
        """List: a finished video job's sampled frames with their detections, one JSON each, in order."""
        return f"{self.prefix}:job:{job_id}:video:frames"

    def result_cache(self, tenant: str, digest: str) -> str:
        """String: the id of a tenant's succeeded job whose result answers requests with this cache digest."""
        return f"{self.prefix}:tenant:{tenant}:cache:{digest}"

    def serving_model(self, task: str) -> str:
        """String: the SHA-256 of the model file that last produced a result of ``task`` (the cache's model version)."""
        return f"{self.prefix}:cache:model:{task}"

    def upload(self, upload_id: str) -> str:
        """String: the tenant an upload (``POST /v1/uploads``) belongs to, for as long as it may be used."""
        return f"{self.prefix}:upload:{upload_id}"

    def blob_expiry(self) -> str:
        """Sorted set of blob names scored by when they expire (epoch s): what the blob sweeper drains."""
        return f"{self.prefix}:blobs:expiry"

    def job_index(self, tenant: str) -> str:
        """Sorted set of a tenant's job ids scored by creation time in µs (listing, newest first)."""
        return f"{self.prefix}:tenant:{tenant}:jobs"

    def done_channel(self) -> str:
        """Pub/sub channel: the id of each job that reaches a final state (long polling)."""
        return f"{self.prefix}:jobs:done"

    def unfinished(self, tenant: str) -> str:
        """Sorted set of a tenant's unfinished job ids scored by creation time in µs (the queued-jobs quota)."""
        return f"{self.prefix}:tenant:{tenant}:unfinished"

    def idempotency(self, tenant: str, key: str) -> str:
        """String: ``<job id> <fingerprint>`` bound to a tenant's Idempotency-Key."""
        return f"{self.prefix}:tenant:{tenant}:idem:{key}"

    # --- galleries (face recognition), tenant-scoped ------------------------------------
    def galleries(self, tenant: str) -> str:
        """Set: a tenant's gallery ids."""
        return f"{self.prefix}:tenant:{tenant}:galleries"

    def gallery(self, tenant: str, gallery_id: str) -> str:
        """Hash: a gallery's record (``record``, JSON) and its ``version`` (bumped by every change of its faces)."""
        return f"{self.prefix}:tenant:{tenant}:gallery:{gallery_id}"

    def gallery_subjects(self, tenant: str, gallery_id: str) -> str:
        """Hash: subject id -> the subject's record (JSON)."""
        return f"{self.prefix}:tenant:{tenant}:gallery:{gallery_id}:subjects"

    def gallery_faces(self, tenant: str, gallery_id: str) -> str:
        """Hash: face id -> the face's record (JSON: subject, box, quality, source; no embedding)."""
        return f"{self.prefix}:tenant:{tenant}:gallery:{gallery_id}:faces"

    def gallery_vectors(self, tenant: str, gallery_id: str) -> str:
        """Hash: face id -> its embedding (little-endian float32 bytes)."""
        return f"{self.prefix}:tenant:{tenant}:gallery:{gallery_id}:vectors"

    def subject_faces(self, tenant: str, gallery_id: str, subject_id: str) -> str:
        """Set: a subject's face ids."""
        return f"{self.prefix}:tenant:{tenant}:gallery:{gallery_id}:subject:{subject_id}:faces"

    def gallery_keys(self, tenant: str, gallery_id: str) -> tuple[str, ...]:
        """Every key of one gallery but its subjects' face sets."""
        return (
            self.gallery(tenant, gallery_id),
            self.gallery_subjects(tenant, gallery_id),
            self.gallery_faces(tenant, gallery_id),
            self.gallery_vectors(tenant, gallery_id),
        )

    # --- API keys --------------------------------------------------------------------
    def api_key(self, key_id: str) -> str:
        """Hash: an API key's record (its hash, tenant, scopes, limits; never the key)."""
        return f"{self.prefix}:apikey:{key_id}"

    def api_key_by_hash(self, digest: str) -> str:
        """String: the id of the key whose SHA-256 is ``digest``."""
        return f"{self.prefix}:apikey-hash:{digest}"

    def api_keys(self) -> str:
        """Set: every key id."""
        return f"{self.prefix}:apikeys"

    def rate_bucket(self, key_id: str) -> str:
        """Hash: a key's token bucket (tokens, last refill in µs)."""
        return f"{self.prefix}:ratelimit:{key_id}"

    # --- statistics and presence -------------------------------------------------------
    def job_counts(self) -> str:
        """Hash: jobs created and finished, by state."""
        return f"{self.prefix}:stats:jobs"

    def inference(self, task: str) -> str:
        """Hash: the inference-time histogram of a task."""
        return f"{self.prefix}:stats:inference:{task}"

    def completions(self, task: str) -> str:
        """Sorted set: recent completion times of a task (drain rate)."""
        return f"{self.prefix}:stats:completions:{task}"

    def workers_seen(self) -> str:
        """Hash: task -> when (unix seconds) a worker of it last beat; says how long a pool has been empty."""
        return f"{self.prefix}:stats:workers_seen"

    def workers(self, task: str) -> str:
        """Hash: live worker processes of a task and their last beat."""
        return f"{self.prefix}:workers:{task}"

    # --- Dramatiq's queues ---------------------------------------------------------------
    def queue(self, queue: str) -> str:
        """List: message ids waiting to be fetched."""
        return f"{self.prefix}:{queue}"

    def queue_messages(self, queue: str) -> str:
        """Hash: every unfinished message of ``queue`` (waiting, prefetched, running, held by a dead worker)."""
        return f"{self.prefix}:{queue}.msgs"

    def delayed_messages(self, queue: str) -> str:
        """Hash: messages of ``queue`` waiting for a retry (Dramatiq's delay queue)."""
        return f"{self.prefix}:{queue}.DQ.msgs"

    def dead_messages(self, queue: str) -> str:
        """Hash: dead-lettered messages of ``queue``."""
        return f"{self.prefix}:{queue}.XQ.msgs"

    def depth_keys(self, queue: str) -> tuple[str, str]:
        """The hashes whose HLENs add up to a queue's depth: unfinished work, waiting, in flight or delayed.

        This is the one definition of queue depth: backpressure in the API, ``/readyz`` and metrics,
        the operator's status and the KEDA triggers all count these two.
        """
        return self.queue_messages(queue), self.delayed_messages(queue)

    def wakeup(self, queue: str) -> str:
        """List: a token per enqueue that an idle consumer of ``queue`` blocks on."""
        return f"{self.prefix}:__wakeup__.{queue}"
