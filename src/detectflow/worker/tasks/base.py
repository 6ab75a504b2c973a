"""The runner contract: what a task's runner takes and hands back."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

from pydantic import BaseModel

if TYPE_CHECKING:
    from detectflow.jobs.records import JobRecord
    from detectflow.worker.context import WorkerContext

__all__ = ["Outcome", "Runner"]


@dataclass(frozen=True, slots=True)
class Outcome:
    """What a runner hands back: the result to store, and figures for the metrics.

    A result of None leaves the job running: its work goes on in other messages (a video's segments).
    """

    result: BaseModel | None
    inference_s: float
    summary: str = ""
    #: Seconds the job waited in the queue (None where the runner cannot tell).
    queued_s: float | None = None
    #: Inputs in the model run this job's input went through (above 1 with dynamic batching).
    batch: int = 1


class Runner(Protocol):
    """Run one job: its record and its input bytes in, its outcome out (raise DetectflowError to fail it)."""

    def __call__(self, ctx: WorkerContext, job: JobRecord, data: bytes) -> Outcome: ...
