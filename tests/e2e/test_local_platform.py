"""`detectflow up` and `detectflow detect` as a user runs them: real processes, real Redis, real model."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import cv2
import httpx
import pytest

from bench.stacks import process_cpu_seconds
from detectflow.cli.up import free_port
from tests.support.images import image_path
from tests.support.processes import cli_env, wait_for
from tests.support.up import UpProcess, processes_with

pytestmark = [pytest.mark.redis, pytest.mark.models, pytest.mark.slow]


def test_up_detect_and_stop_leaves_nothing_behind(tmp_path: Path):
    state = tmp_path / "state"
    marker = f"DETECTFLOW_STATE_DIR={state}"
    up = UpProcess(state, tmp_path / "up.log")
    try:
        # When a user runs `detectflow detect` on a photo with a face
        out = tmp_path / "out"
        res = subprocess.run(
            [sys.executable, "-m", "detectflow.cli.main", "detect", str(image_path("astronaut")),
             "--task", "face", "--api", up.url, "--out", str(out)],
            capture_output=True, text=True, timeout=120, env=cli_env(state_dir=state),
        )  # fmt: skip
        # Then it prints the face and writes the annotated image
        assert res.returncode == 0, res.stdout + res.stderr
        assert "1 detection(s)" in res.stdout and "face" in res.stdout
        annotated = cv2.imread(str(out / "astronaut.face.png"))
        assert annotated is not None and annotated.shape == (512, 512, 3)
        # and --json prints the job
        res = subprocess.run(
            [sys.executable, "-m", "detectflow.cli.main", "detect", str(image_path("grace_hopper")),
             "--api", up.url, "--json"],
            capture_output=True, text=True, timeout=120, env=cli_env(state_dir=state),
        )  # fmt: skip
        job = json.loads(res.stdout.strip().splitlines()[-1])
        assert job["status"] == "succeeded" and len(job["result"]["detections"]) == 1
        assert len(processes_with(marker)) >= 3  # redis, api, worker (+ its forked process)
        # `up` said it is up, with the API's URL, and now only watches its children: it does not spin
        wait_for(lambda: f"detectflow is up: API {up.url}" in (tmp_path / "up.log").read_text(), 30, what="the up line")
        before = process_cpu_seconds(up.proc.pid)
        time.sleep(3)
        assert process_cpu_seconds(up.proc.pid) - before < 0.15  # under 5 % of a core while idle
    finally:
        code = up.stop(signal.SIGINT)
    # Ctrl-C stops everything cleanly, leaving no process behind
    assert code == 0, (tmp_path / "up.log").read_text()[-3000:]
    assert processes_with(marker) == []

    # A restart over the same state directory keeps accepted jobs (append-only file)
    up = UpProcess(state, tmp_path / "up2.log")
    try:
        again = httpx.get(f"{up.url}/v1/jobs/{job['id']}", headers=up.auth).json()
        assert again["status"] == "succeeded" and again["result"] == job["result"]
    finally:
        assert up.stop(signal.SIGTERM) == 0
    assert processes_with(marker) == []


def test_detect_reports_api_errors(tmp_path: Path):
    bad = tmp_path / "notes.png"
    bad.write_text("not an image")
    res = subprocess.run(
        [sys.executable, "-m", "detectflow.cli.main", "detect", str(bad), "--api", f"http://127.0.0.1:{free_port()}"],
        capture_output=True, text=True, timeout=60, env=cli_env(state_dir=tmp_path / "s"),
    )  # fmt: skip
    assert res.returncode == 1
    assert "notes.png" in res.stdout + res.stderr


def test_up_refuses_a_busy_port_with_a_clear_message(tmp_path: Path):
    import socket

    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        res = subprocess.run(
            [sys.executable, "-m", "detectflow.cli.main", "up", "--port", str(port), "--no-build-models"],
            capture_output=True, text=True, timeout=60, env=cli_env(state_dir=tmp_path / "s"),
        )  # fmt: skip
    assert res.returncode == 1
    assert f"cannot listen on 127.0.0.1:{port}" in res.stdout + res.stderr


def test_up_killed_outright_leaves_no_process_behind(tmp_path: Path):
    # Given a running `detectflow up`
    state = tmp_path / "state"
    up = UpProcess(state, tmp_path / "up.log")
    marker = f"DETECTFLOW_STATE_DIR={state}"
    assert len(processes_with(marker)) >= 3
    # When it is killed with no chance to clean up (SIGKILL, or its terminal's pipe gone)
    up.proc.kill()
    up.proc.wait(10)
    up.log.close()
    # Then its children die with it
    wait_for(lambda: processes_with(marker) == [], 30, 0.2, what="the children to exit")


def test_up_delivers_webhooks_to_a_receiver_on_this_machine(tmp_path: Path):
    # Given `detectflow up` on loopback (it opens 127.0.0.0/8 to webhooks) and a receiver on 127.0.0.1
    from detectflow.webhooks import SIGNATURE_HEADER, verify
    from tests.support.images import image_bytes
    from tests.support.receivers import Receiver

    state = tmp_path / "state"
    up = UpProcess(state, tmp_path / "up.log")
    try:
        with Receiver() as receiver:
            # When a job is submitted with that receiver as its webhook
            job = httpx.post(
                f"{up.url}/v1/jobs",
                files={"file": ("a.png", image_bytes("astronaut"))},
                data={"task": "face", "webhook_url": receiver.url()},
                headers=up.auth,
                timeout=10,
            ).json()
            final = wait_for(
                lambda: (j := httpx.get(f"{up.url}/v1/jobs/{job['id']}", headers=up.auth, timeout=5).json())
                .get("webhook", {})
                .get("state") == "delivered" and j,
                60,
                what="webhook delivery",
            )
        # Then it was delivered once, signed with the secret `up` keeps in its state directory
        assert final["webhook"]["last_status_code"] == 204 and len(receiver.received) == 1
        _, headers, body = receiver.received[0]
        assert verify((state / "webhook-secret").read_text().strip(), body, headers[SIGNATURE_HEADER])
    finally:
        assert up.stop(signal.SIGINT) == 0, (tmp_path / "up.log").read_text()[-3000:]
