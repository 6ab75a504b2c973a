"""The `helm test` pod's script, run for real: kwok cannot run the pod, so the script the chart
renders is run here against a real API, a real face worker and a real redis-server."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from detectflow.cli.up import RedisServer
from tests.chart.conftest import Helm, find
from tests.support.processes import TEST_ADMIN_KEY, cli_env, start_api, start_worker

pytestmark = [pytest.mark.redis, pytest.mark.models, pytest.mark.timeout(240)]


def _hook(helm: Helm, api_url: str, timeout: int) -> tuple[list[str], dict[str, str]]:
    (pod,) = find(helm.template(f"tests.apiUrl={api_url}", f"tests.timeoutSeconds={timeout}"), "Pod")
    container = pod["spec"]["containers"][0]
    # The kubelet would fill valueFrom entries from their Secret: here the local API's admin key.
    env = {}
    for e in container["env"]:
        if "valueFrom" in e:
            assert e["name"] == "API_KEY" and "secretKeyRef" in e["valueFrom"], e
            env[e["name"]] = TEST_ADMIN_KEY
        else:
            env[e["name"]] = e["value"]
    return container["command"], env


def test_chart_hook_script_submits_a_job_and_polls_it_to_success(
    helm: Helm, redis_server: RedisServer, prefix: str, tmp_path: Path
) -> None:
    # Given the platform running as local processes
    env = cli_env(redis_url=redis_server.url, redis_prefix=prefix)
    api, url = start_api(env, tmp_path / "api.log")
    worker = start_worker(env, tmp_path / "worker.log", "face")
    try:
        # When the hook pod's command runs with the env the chart gives it
        command, hook_env = _hook(helm, url, 120)
        assert command[0] == "python3"
        proc = subprocess.run(
            [sys.executable, *command[1:]], env={**os.environ, **hook_env}, capture_output=True, text=True, timeout=180
        )
    finally:
        worker.stop()
        api.stop()
    # Then it exits 0 after the job succeeded
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "submitted" in proc.stdout and "succeeded" in proc.stdout


def test_chart_hook_script_fails_when_the_job_never_finishes(
    helm: Helm, redis_server: RedisServer, prefix: str, tmp_path: Path
) -> None:
    # Given an API with no worker: the job stays queued
    api, url = start_api(cli_env(redis_url=redis_server.url, redis_prefix=prefix), tmp_path / "api.log")
    try:
        command, hook_env = _hook(helm, url, 10)
        proc = subprocess.run(
            [sys.executable, *command[1:]], env={**os.environ, **hook_env}, capture_output=True, text=True, timeout=60
        )
    finally:
        api.stop()
    # Then the test fails with the job's state, not silently
    assert proc.returncode != 0
    assert "still queued" in proc.stderr
