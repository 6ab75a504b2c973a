"""Kinds of job: what each takes, what it returns and which queue serves it, declared in one place."""

from __future__ import annotations

from dataclasses import dataclass

from pydantic import BaseModel, ConfigDict

from detectflow.config import Pool, Task
from detectflow.jobs.results import DetectionResult
from detectflow.jobs.results_recognition import EmbedResult, EnrolResult, MatchResult, RecognizeResult, VerifyResult
from detectflow.jobs.options import EnrolOptions, MatchOptions, RecognizeOptions, VerifyOptions
from detectflow.keys import detect_queue, webhook_queue

__all__ = ["JobKind", "DetectOptions", "KINDS", "kind_of", "kinds_of_pool"]


class DetectOptions(BaseModel):
    """Options of a detection job (none yet: thresholds are the worker's settings)."""

    model_config = ConfigDict(extra="forbid")


@dataclass(frozen=True, slots=True)
class JobKind:
    """One kind of job.

    Attributes
    ----------
    task
        The name a client submits (the ``task`` form field) and the worker pool that serves it.
    media
        Input media accepted (``image``, ``video``).
    options
        Validated options of a submission.
    result
        The model of the stored result.
    summary
        One line for the API reference.
    pool
        The worker pool that runs it (its queue, actor and models); by default the pool named as the task.
    """

    task: Task
    media: frozenset[str]
    options: type[BaseModel]
    result: type[BaseModel]
    summary: str
    pool: Pool | None = None

    @property
    def served_by(self) -> Pool:
        """The pool whose workers run this kind's jobs."""
        return self.pool or Pool(self.task.value)

    @property
    def queue(self) -> str:
        """Dramatiq queue of this kind's jobs (one per pool)."""
        return detect_queue(self.served_by.value)

    @property
    def webhook_queue(self) -> str:
        """Dramatiq queue of this kind's webhook deliveries."""
        return webhook_queue(self.served_by.value)

    @property
    def actor_name(self) -> str:
        """Name of the Dramatiq actor that runs this kind's jobs (one per pool: it runs the job's task's runner)."""
        return f"detect_{self.served_by.value}"

    @property
    def segment_actor_name(self) -> str:
        """Name of the Dramatiq actor that runs one segment of this kind's video jobs (one per pool, same queue)."""
        return f"segment_{self.served_by.value}"

    @property
    def webhook_actor_name(self) -> str:
        """Name of the Dramatiq actor that delivers this kind's webhooks."""
        return f"deliver_webhook_{self.served_by.value}"


#: Every kind of job, by the task name a client submits.
KINDS: dict[Task, JobKind] = {
    Task.face: JobKind(
        Task.face, frozenset({"image", "video"}), DetectOptions, DetectionResult, "Faces, each with five landmarks."
    ),
    Task.object: JobKind(
        Task.object, frozenset({"image", "video"}), DetectOptions, DetectionResult, "Objects of the 80 COCO classes."
    ),
    Task.embed: JobKind(
        Task.embed, frozenset({"image", "video"}), DetectOptions, EmbedResult,
        "Faces, each with its 128-d embedding and quality.", Pool.recognition,
    ),
    Task.enrol: JobKind(
        Task.enrol, frozenset({"images"}), EnrolOptions, EnrolResult,
        "Faces of one or many images enrolled into a gallery's subject.", Pool.recognition,
    ),
    Task.recognize: JobKind(
        Task.recognize, frozenset({"image", "video"}), RecognizeOptions, RecognizeResult,
        "Faces, each matched 1:N against a gallery.", Pool.recognition,
    ),
    Task.verify: JobKind(
        Task.verify, frozenset({"images"}), VerifyOptions, VerifyResult,
        "Two faces (two images, or an image and a subject): the same person or not.", Pool.recognition,
    ),
    Task.match: JobKind(
        Task.match, frozenset({"embeddings"}), MatchOptions, MatchResult,
        "Embeddings matched 1:N against a gallery (a batch above the synchronous limit).", Pool.recognition,
    ),
}  # fmt: skip


def kind_of(task: Task | str) -> JobKind:
    """The kind a task name submits.

    Raises
    ------
    KeyError
        For a task no kind declares.
    """
    return KINDS[Task(task)]


def kinds_of_pool(pool: Pool | str) -> list[JobKind]:
    """The kinds a worker pool runs (they share its queue and actor)."""
    return [k for k in KINDS.values() if k.served_by == Pool(pool)]
