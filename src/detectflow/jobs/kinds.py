"""Kinds of job: what each takes, what it returns and which queue serves it, declared in one place."""

from __future__ import annotations

from dataclasses import dataclass

from pydantic import BaseModel, ConfigDict

from detectflow.config import Task
from detectflow.jobs.results import DetectionResult
from detectflow.keys import detect_queue, webhook_queue

__all__ = ["JobKind", "DetectOptions", "KINDS", "kind_of"]


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
    """

    task: Task
    media: frozenset[str]
    options: type[BaseModel]
    result: type[BaseModel]
    summary: str

    @property
    def queue(self) -> str:
        """Dramatiq queue of this kind's jobs."""
        return detect_queue(self.task.value)

    @property
    def webhook_queue(self) -> str:
        """Dramatiq queue of this kind's webhook deliveries."""
        return webhook_queue(self.task.value)

    @property
    def actor_name(self) -> str:
        """Name of the Dramatiq actor that runs this kind's jobs."""
        return f"detect_{self.task.value}"

    @property
    def segment_actor_name(self) -> str:
        """Name of the Dramatiq actor that runs one segment of this kind's video jobs (same queue)."""
        return f"segment_{self.task.value}"

    @property
    def webhook_actor_name(self) -> str:
        """Name of the Dramatiq actor that delivers this kind's webhooks."""
        return f"deliver_webhook_{self.task.value}"


#: Every kind of job, by the task name a client submits.
KINDS: dict[Task, JobKind] = {
    Task.face: JobKind(
        Task.face, frozenset({"image", "video"}), DetectOptions, DetectionResult, "Faces, each with five landmarks."
    ),
    Task.object: JobKind(
        Task.object, frozenset({"image", "video"}), DetectOptions, DetectionResult, "Objects of the 80 COCO classes."
    ),
}


def kind_of(task: Task | str) -> JobKind:
    """The kind a task name submits.

    Raises
    ------
    KeyError
        For a task no kind declares.
    """
    return KINDS[Task(task)]
