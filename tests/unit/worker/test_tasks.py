"""The runner registry: every kind of job a client can submit has a runner in the worker."""

from detectflow.jobs.kinds import KINDS
from detectflow.worker.tasks import RUNNERS, runner_for


def test_runners_cover_every_kind():
    assert set(RUNNERS) == set(KINDS)


def test_runner_for_accepts_task_names():
    for task in KINDS:
        assert runner_for(task.value) is RUNNERS[task]
