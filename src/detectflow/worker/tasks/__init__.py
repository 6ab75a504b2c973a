"""What a worker does with one job of each kind: a runner per task, looked up by the job actor."""

from __future__ import annotations

from detectflow.config import Task
from detectflow.worker.tasks.base import Outcome, Runner
from detectflow.worker.tasks.detect import run_detect

__all__ = ["Outcome", "Runner", "RUNNERS", "runner_for"]


#: The runner of each task. A new kind of job adds its module here and its JobKind in detectflow.jobs.kinds.
RUNNERS: dict[Task, Runner] = {
    Task.face: run_detect,
    Task.object: run_detect,
}


def runner_for(task: Task) -> Runner:
    """The runner of ``task``.

    Raises
    ------
    KeyError
        For a task no runner serves.
    """
    return RUNNERS[Task(task)]
