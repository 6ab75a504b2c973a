"""The seeds' Celery stack of `make bench` against a real redis-server and the real face model."""

from __future__ import annotations

import time

import httpx
import pytest

from bench.run import e2e, input_tensor
from bench.stacks import CeleryStack, redis_server_binary, tree_cpu_seconds
from detectflow.config import Settings, Task
from detectflow.detectors import load_detector
from detectflow.jobs.images import decode_image
from tests.support.images import image_bytes

pytestmark = [pytest.mark.redis, pytest.mark.models, pytest.mark.slow]


@pytest.fixture(scope="module")
def celery_stack(tmp_path_factory):
    stack = CeleryStack(tmp_path_factory.mktemp("celery"), redis_server_binary(), "prefork", 2).start()
    yield stack
    stack.stop()


def _wait_job(url: str, job_id: str, timeout: float = 120) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        body = httpx.get(f"{url}/v1/jobs/{job_id}").json()
        if body["status"] in ("succeeded", "failed"):
            return body
        time.sleep(0.1)
    raise TimeoutError(job_id)


def _assert_same_faces_as(stack, precision: str) -> None:
    # Given a photo with one face and detectflow's own detector on the face model's file of that precision
    data = image_bytes("astronaut")
    expected = load_detector(Task.face, Settings(device="cpu", cpu_precision=precision)).detect(decode_image(data))
    url = f"http://127.0.0.1:{stack.port}"

    # When the Celery stack is given it
    created = httpx.post(f"{url}/v1/jobs", files={"file": ("a.png", data)}, data={"task": "face"})
    job = _wait_job(url, created.json()["id"])

    # Then it answers 202 with an id, and the job ends with the same detections
    assert created.status_code == 202 and created.json()["status"] == "queued"
    assert job["status"] == "succeeded", job
    got = job["result"]["detections"]
    assert len(got) == len(expected) >= 1
    for g, e in zip(got, expected):
        assert g["score"] == pytest.approx(e.score, abs=1e-4)
        assert g["box"]["x"] == pytest.approx(e.box.x, abs=0.5)
        assert g["box"]["width"] == pytest.approx(e.box.width, abs=0.5)


def test_celery_stack_finds_the_faces_detectflow_finds_on_the_fp32_file(celery_stack):
    # the seeds' stack: the model's fp32 file, whichever file detectflow's workers default to
    assert celery_stack.name == "celery"
    _assert_same_faces_as(celery_stack, "fp32")


def test_celery_stack_on_the_int8_file_finds_what_detectflow_int8_finds(tmp_path):
    stack = CeleryStack(tmp_path, redis_server_binary(), "solo", 1, precision="int8").start()
    try:
        assert stack.name == "celery int8"
        _assert_same_faces_as(stack, "int8")
    finally:
        stack.stop()


def test_celery_stack_rejects_unknown_jobs_and_tasks(celery_stack):
    url = f"http://127.0.0.1:{celery_stack.port}"
    assert httpx.get(f"{url}/v1/jobs/nosuchjob").status_code == 404
    bad = httpx.post(f"{url}/v1/jobs", files={"file": ("a.jpg", b"x")}, data={"task": "video"})
    assert bad.status_code == 422


def test_e2e_client_counts_every_job_and_the_stack_cpu(celery_stack):
    # Given the benchmark's polling client on 4 users
    import asyncio

    before = celery_stack.cpu()
    run = asyncio.run(e2e(celery_stack.port, image_bytes("astronaut"), jobs=12, users=4))
    after = celery_stack.cpu()

    # Then every job is seen finished, with the face, and the worker's CPU was counted
    assert (run.done, run.failed, run.rejected, run.timed_out) == (12, 0, 0, False)
    assert run.faces == {1} and run.jobs_per_s > 0 and len(run.post_ms) == 12
    assert after["worker"] > before["worker"]
    assert set(tree_cpu_seconds(celery_stack.redis.proc.pid, False)) == {"redis-server"}


def test_input_tensor_is_the_mean_subtracted_nchw_photo():
    import json

    import numpy as np

    card = json.loads((Settings().model_dir / "retinaface-mnet025.json").read_text())
    image = np.full((4, 6, 3), (110, 120, 130), np.uint8)
    x = input_tensor(image, card)
    assert x.shape == (1, 3, 4, 6) and x.dtype == np.float32
    assert x[0, :, 0, 0].tolist() == [6.0, 3.0, 7.0]


def test_stacks_serve_retries_a_port_taken_before_the_server_binds_it(tmp_path):
    import subprocess
    import sys

    from bench.stacks import _serve, _spawn

    log, ports = tmp_path / "server.log", []

    def spawn(port: int) -> subprocess.Popen:
        ports.append(port)
        if len(ports) == 1:  # the first port was taken meanwhile: the server says so and exits
            code = "import sys; print('ERROR: [Errno 98] error while attempting to bind: address already in use'); sys.exit(3)"
        else:
            code = "import time; time.sleep(30)"
        return _spawn([sys.executable, "-c", code], {}, log)

    port, proc = _serve(spawn, lambda p: len(ports) == 2 and p == ports[1], log, 10, "test server")
    try:
        assert len(ports) == 2 and port == ports[1] and proc.poll() is None
    finally:
        proc.kill()
        proc.wait()
    # another failure is not retried
    with pytest.raises(RuntimeError, match="exited during start-up"):
        _serve(lambda p: _spawn([sys.executable, "-c", "raise SystemExit(1)"], {}, log), lambda p: False, log, 10, "x")
