"""The video section of `make bench`: its stack (API + worker processes sharing one blob store) runs a real clip."""

from __future__ import annotations

import pytest

from bench.stacks import redis_server_binary
from bench.video import VideoStack
from tests.support.videos import video_path

pytestmark = [pytest.mark.redis, pytest.mark.models, pytest.mark.slow]


def test_video_stack_runs_a_clip_across_its_worker_processes(tmp_path):
    # Given the bench's video stack with two worker processes (started apart, as `make bench` starts them)
    stack = VideoStack(tmp_path, redis_server_binary(), 2).start()
    try:
        # When it runs carphone (one face throughout)
        run = stack.run_job(video_path("carphone_pristine").read_bytes(), 5)
        # Then the job succeeds with its face track, its segments done by the workers
        job = run["job"]
        assert job["status"] == "succeeded", job
        assert [t["label"] for t in job["result"]["tracks"]] == ["face"]
        assert sum(stack.segments_by_worker(job["id"])) == job["result"]["segments"]
    finally:
        stack.stop()
