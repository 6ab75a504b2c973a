"""The monitoring bundle against a live `detectflow up`: a real Prometheus scrapes the API and each worker
process, evaluates every alert of the rule file, and answers every dashboard query; the names they read exist."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import cv2
import httpx
import pytest

from detectflow import monitoring
from detectflow.cli.up import free_port
from tests.support.images import image_bgr, image_bytes
from tests.support.polling import wait_for
from tests.support.prometheus import PrometheusServer, promtool
from tests.support.receivers import Receiver, answer_status
from tests.support.up import UpProcess

pytestmark = [pytest.mark.prometheus, pytest.mark.redis, pytest.mark.models, pytest.mark.slow]

#: Worker processes `up` runs: each serves its own metrics port.
WORKERS = 2
#: Pixels past which the workers' OpenCV refuses to decode (OPENCV_IO_MAX_IMAGE_PIXELS): the API's limit is
#: higher, so a bigger image is accepted and its job fails on the worker.
WORKER_DECODE_PIXELS = 100_000
#: Series the operator exports (checked against a live operator in tests/operator/), not by `up`.
OPERATOR_PREFIX = "detectflow_operator_"


def _free_ports(count: int) -> int:
    """A base port whose ``count`` successors are free now."""
    for _ in range(50):
        base = free_port()
        if base + count < 65536 and all(_is_free(base + i) for i in range(count)):
            return base
    raise RuntimeError("no run of free ports")


def _is_free(port: int) -> bool:
    import socket

    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[UpProcess, list[str]]]:
    """`detectflow up` with its API metrics port and one metrics port per worker process; the scrape targets."""
    tmp = tmp_path_factory.mktemp("up")
    api_metrics, worker_base = free_port(), _free_ports(WORKERS)
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("OPENCV_IO_MAX_IMAGE_PIXELS", str(WORKER_DECODE_PIXELS))
        up = UpProcess(tmp / "state", tmp / "up.log", workers=WORKERS, api_metrics_port=api_metrics,
                       worker_metrics_port=worker_base, webhook_max_attempts=1)  # fmt: skip
    try:
        yield up, [f"127.0.0.1:{api_metrics}", *(f"127.0.0.1:{worker_base + i}" for i in range(WORKERS))]
    finally:
        up.stop()


def _job(up: UpProcess, data: bytes, **form: str) -> dict:
    with httpx.Client(base_url=up.url, headers=up.auth, timeout=10) as client:
        res = client.post("/v1/jobs", files={"file": ("img.png", data)}, data={"task": "face", **form})
        assert res.status_code == 202, res.text
        job_id = res.json()["id"]
        return wait_for(
            lambda: (j := client.get(f"/v1/jobs/{job_id}").json())["status"] in ("succeeded", "failed") and j,
            60, 0.2, what=f"job {job_id}",
        )  # fmt: skip


def _exercise(up: UpProcess) -> None:
    """A succeeded job with a delivered webhook, another whose webhook fails, and a job that fails."""
    big = image_bytes("astronaut")  # 512 x 512: over the workers' decode limit
    small = cv2.imencode(".png", cv2.resize(image_bgr("astronaut"), (256, 256)))[1].tobytes()
    with Receiver(answer_status(204)) as ok, Receiver(answer_status(500)) as broken:
        assert _job(up, small, webhook_url=ok.url())["status"] == "succeeded"
        assert _job(up, small, webhook_url=broken.url())["status"] == "succeeded"
        wait_for(lambda: ok.received and broken.received, 30, 0.2, what="both webhooks")
    assert _job(up, big)["status"] == "failed"


def test_rule_file_passes_promtool(tmp_path: Path) -> None:
    rules = tmp_path / "rules.yaml"
    rules.write_text(monitoring.rules_text())
    proc = promtool("check", "rules", str(rules))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert f"SUCCESS: {len(monitoring.alert_expressions())} rules found" in proc.stdout


def test_prometheus_scrapes_up_and_every_alert_and_panel_query_works(
    stack: tuple[UpProcess, list[str]], tmp_path: Path
) -> None:
    up, targets = stack
    _exercise(up)
    rules = tmp_path / "rules.yaml"
    rules.write_text(monitoring.rules_text())
    with PrometheusServer(tmp_path / "prom", targets, rule_files=[str(rules)]) as prom:
        # Every target (the API and each worker process on its own port) is up
        wait_for(lambda: len(prom.query("up == 1")) == len(targets), 30, 0.5, what="every target up")
        prom.wait_for_series('detectflow_worker_webhook_deliveries_total{outcome="failed"}')
        prom.wait_for_series('detectflow_worker_jobs_total{outcome="failed"}')
        time.sleep(2)  # a second scrape of everything, so rate() has two samples
        names = set(prom.api("label/__name__/values"))
        groups = wait_for(lambda: _evaluated(prom), 30, 0.5, what="every rule evaluated")
        panels = {key: prom.api("query", query=_concrete(expr)) for key, expr in monitoring.dashboard_expressions().items()}
        jobs = prom.query('sum by (outcome) (detectflow_worker_jobs_total{kind="face"})')
        per_target = prom.query("count by (instance) (detectflow_worker_model_load_seconds)")
    # Then every alert evaluated without error, and every panel's query is valid PromQL with a result type
    evaluated = {r["name"]: r for g in groups for r in g["rules"]}
    assert set(evaluated) == set(monitoring.alert_expressions())
    assert all(r["health"] == "ok" and not r.get("lastError") for r in evaluated.values()), evaluated
    assert all(data["resultType"] in ("vector", "matrix", "scalar") for data in panels.values())
    # and the names the rules and the dashboard read are all scraped (the operator's come from the operator)
    used = set().union(*map(monitoring.metric_names, [*monitoring.alert_expressions().values(),
                                                       *monitoring.dashboard_expressions().values()]))  # fmt: skip
    assert {n for n in used if not n.startswith(OPERATOR_PREFIX)} <= names
    # and the workers counted what happened: 2 succeeded, 1 failed, across processes
    outcomes = {s["metric"]["outcome"]: float(s["value"][1]) for s in jobs}
    assert outcomes.get("succeeded") == 2 and outcomes.get("failed") == 1
    assert len(per_target) == WORKERS  # each worker process reports its model load on its own port


def _concrete(expr: str) -> str:
    """A panel query with the dashboard's template variables set as Grafana's "All" sets them."""
    return expr.replace("$namespace", ".*")


def _evaluated(prom: PrometheusServer) -> list[dict] | None:
    groups = prom.api("rules")["groups"]
    rules = [r for g in groups for r in g["rules"]]
    return groups if rules and all(r.get("health") in ("ok", "err") for r in rules) else None
