"""Prometheus and promtool of the test suite, built from their Go module: rule checks and a live scrape of the API."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from detectflow.cli.up import RedisServer
from tests.support.polling import wait_for
from detectflow.cli.up import free_port
from tests.support.processes import cli_env, start_api
from tests.support.prometheus import PrometheusServer, promtool
from tests.support.servers import pinned_versions

pytestmark = pytest.mark.prometheus

RULES = """\
groups:
  - name: detectflow-test
    rules:
      - record: detectflow:http_requests:rate1m
        expr: sum by (route) (rate(detectflow_http_requests_total[1m]))
      - alert: DetectflowApiDown
        expr: up{job="detectflow"} == 0
        for: 1m
        labels: {severity: critical}
        annotations: {summary: "the detectflow API is not scraped"}
"""
BROKEN_RULES = RULES.replace("rate(detectflow_http_requests_total[1m]))", "rate(detectflow_http_requests_total[1m])")


@pytest.fixture(scope="module")
def api_url(redis_server: RedisServer, tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, str]]:
    """A real `detectflow api` process on 127.0.0.1 with a key prefix of this module's own:
    its URL, and the host:port of its metrics (a port of their own)."""
    logs = tmp_path_factory.mktemp("api")
    metrics_port = free_port()
    env = cli_env(redis_url=redis_server.url, redis_prefix=f"test{uuid.uuid4().hex[:10]}", state_dir=logs / "state",
                  api_metrics_port=metrics_port)  # fmt: skip
    proc, url = start_api(env, logs / "api.log")
    try:
        yield url, f"127.0.0.1:{metrics_port}"
    finally:
        proc.stop()


def test_promtool_is_the_pinned_release() -> None:
    proc = promtool("--version")
    assert proc.returncode == 0, proc.stderr
    assert f"version {pinned_versions()['PROMETHEUS_VERSION'].removeprefix('v')}" in proc.stdout + proc.stderr


def test_promtool_check_rules_accepts_valid_rules(tmp_path: Path) -> None:
    rules = tmp_path / "rules.yml"
    rules.write_text(RULES)
    proc = promtool("check", "rules", str(rules))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "SUCCESS: 2 rules found" in proc.stdout


def test_promtool_check_rules_rejects_a_broken_expression(tmp_path: Path) -> None:
    rules = tmp_path / "broken.yml"
    rules.write_text(BROKEN_RULES)
    proc = promtool("check", "rules", str(rules))
    assert proc.returncode != 0
    assert "FAILED" in proc.stdout + proc.stderr and "parse error" in proc.stdout + proc.stderr


@pytest.mark.redis
def test_prometheus_scrapes_the_api_and_evaluates_rules(api_url: tuple[str, str], tmp_path: Path) -> None:
    # Given a real API that has served a few requests
    api_url, target = api_url
    for _ in range(3):
        assert httpx.get(f"{api_url}/healthz", timeout=5).status_code == 200
    rules = tmp_path / "rules.yml"
    rules.write_text(RULES)
    # When Prometheus scrapes it
    with PrometheusServer(tmp_path / "prom", [target], rule_files=[str(rules)]) as prom:
        series = prom.wait_for_series('detectflow_http_requests_total{route="/healthz",method="GET",status="200"}')
        up = prom.wait_for_series('up{job="detectflow"} == 1')
        (health,) = prom.targets()
        groups = _evaluated_rule_groups(prom)
    # Then the API's counter is there with the target's labels, and every rule evaluated without error
    assert series[0]["metric"]["instance"] == target and float(series[0]["value"][1]) >= 3
    assert up[0]["metric"]["instance"] == target
    assert health["health"] == "up" and health["lastError"] == ""
    rules_seen = {r["name"]: r for g in groups for r in g["rules"]}
    assert set(rules_seen) == {"detectflow:http_requests:rate1m", "DetectflowApiDown"}
    assert all(r["health"] == "ok" and not r.get("lastError") for r in rules_seen.values())
    assert rules_seen["DetectflowApiDown"]["state"] == "inactive"


def _evaluated_rule_groups(prom: PrometheusServer) -> list[dict]:
    """The rule groups once every rule has been evaluated at least once."""
    def evaluated():
        groups = prom.api("rules")["groups"]
        rules = [r for g in groups for r in g["rules"]]
        return groups if rules and all(r.get("health") in ("ok", "err") for r in rules) else None

    return wait_for(evaluated, 30, 0.5, what="the rules to be evaluated")
