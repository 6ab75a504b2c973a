"""What a worker does with one job of each kind: a runner per task, looked up by the job actor."""

from __future__ import annotations

from detectflow.config import Task
from detectflow.worker.tasks.base import Outcome, Runner
from detectflow.worker.tasks.detect import run_detect
from detectflow.worker.tasks.recognition import run_embed, run_enrol, run_match, run_recognize, run_verify
from detectflow.worker.tasks.video import run_video

__all__ = ["Outcome", "Runner", "RUNNERS", "VIDEO_RUNNERS", "runner_for"]


#: The runner of each task. A new kind of job adds its module here and its JobKind in detectflow.jobs.kinds.
RUNNERS: dict[Task, Runner] = {
    Task.face: run_detect,
    Task.object: run_detect,
    Task.embed: run_embed,
    Task.enrol: run_enrol,
    Task.recognize: run_recognize,
    Task.verify: run_verify,
    Task.match: run_match,
}


#: The runner of each task's video jobs (it splits the video into segment messages).
VIDEO_RUNNERS: dict[Task, Runner] = {
    Task.face: run_video,
    Task.object: run_video,
    Task.embed: run_video,
    Task.recognize: run_video,
}


def runner_for(task: Task, media: str = "image") -> Runner:
    """The runner of ``task`` for input ``media`` (``image`` or ``video``).

    Raises
    ------
    KeyError
        For a task no runner serves.
    """
    return (VIDEO_RUNNERS if media == "video" else RUNNERS)[Task(task)]
