"""The runner registry: every kind of job a client can submit has a runner in the worker."""

from detectflow.jobs.kinds import KINDS
from detectflow.worker.tasks import RUNNERS, runner_for


def test_runners_cover_every_kind():
    assert set(RUNNERS) == set(KINDS)


def test_runner_for_accepts_task_names():
    for task in KINDS:
        assert runner_for(task.value) is RUNNERS[task]


def test_video_runners_cover_every_kind_that_takes_videos():
    from detectflow.worker.tasks import VIDEO_RUNNERS
    from detectflow.worker.tasks.video import run_video

    assert set(VIDEO_RUNNERS) == {task for task, kind in KINDS.items() if "video" in kind.media}
    for task in VIDEO_RUNNERS:
        assert runner_for(task, "video") is run_video
