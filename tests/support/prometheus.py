"""A real Prometheus for tests, built from github.com/prometheus/prometheus by scripts/servers/build.sh.

    with PrometheusServer(tmp_path, targets=["127.0.0.1:8000"]) as prom:   # free port, temp TSDB
        prom.wait_for_series('detectflow_http_requests_total{route="/healthz"}')
        prom.query("up")                      # the HTTP API's data.result (list of samples)
    promtool("check", "rules", "rules.yml")   # CompletedProcess of the built promtool

The scrape config is generated (JSON, which Prometheus reads as YAML) with a short interval.
"""

from __future__ import annotations

import json
import subprocess
import urllib.error
import urllib.parse
from pathlib import Path
from typing import Any

from detectflow.cli.up import free_port
from tests.support.polling import wait_for
from tests.support.servers import LOOPBACK, ServerError, ServerProcess, ensure_built

__all__ = ["PrometheusServer", "promtool", "scrape_config"]

DEFAULT_SCRAPE_INTERVAL = "1s"  # Prometheus duration; short so tests see samples at once
DEFAULT_START_TIMEOUT = 60.0  # seconds until /-/ready
DEFAULT_QUERY_TIMEOUT = 10.0  # seconds per HTTP API call


def scrape_config(
    targets: list[str], *, job: str = "detectflow", interval: str = DEFAULT_SCRAPE_INTERVAL, rule_files: list[str] = ()
) -> dict[str, Any]:
    """A Prometheus configuration that scrapes ``targets`` (``host:port``, ``/metrics``) every ``interval``.

    Parameters
    ----------
    targets
        Scrape targets; tests pass 127.0.0.1 addresses only.
    job
        The ``job`` label of the targets.
    interval
        Scrape and rule evaluation interval (a Prometheus duration such as ``1s``).
    rule_files
        Paths of rule files to load.
    """
    return {
        "global": {"scrape_interval": interval, "scrape_timeout": interval, "evaluation_interval": interval},
        "rule_files": list(rule_files),
        "scrape_configs": [{"job_name": job, "static_configs": [{"targets": list(targets)}]}],
    }


def promtool(*args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    """Run the built promtool with ``args``; never raises on a non-zero exit (check ``returncode``)."""
    binary = ensure_built("promtool")
    return subprocess.run([str(binary), *args], capture_output=True, text=True, timeout=timeout)


class PrometheusServer:
    """Prometheus on 127.0.0.1 with its TSDB in ``data_dir``, scraping ``targets``."""

    def __init__(
        self,
        data_dir: Path,
        targets: list[str],
        *,
        interval: str = DEFAULT_SCRAPE_INTERVAL,
        rule_files: list[str] = (),
    ) -> None:
        self.data_dir = Path(data_dir)
        self.config = scrape_config(targets, interval=interval, rule_files=rule_files)
        self.port = free_port()
        self.proc: ServerProcess | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout: float = DEFAULT_START_TIMEOUT) -> PrometheusServer:
        binary = ensure_built("prometheus")
        self.data_dir.mkdir(parents=True, exist_ok=True)
        config = self.data_dir / "prometheus.yml"
        config.write_text(json.dumps(self.config, indent=2))
        args = [
            str(binary), f"--config.file={config}", f"--storage.tsdb.path={self.data_dir / 'tsdb'}",
            f"--web.listen-address=127.0.0.1:{self.port}", "--log.level=info",
        ]  # fmt: skip
        self.proc = ServerProcess(args, {"PATH": "/usr/bin:/bin", "HOME": str(self.data_dir)},
                                  self.data_dir / "prometheus.log", cwd=self.data_dir)  # fmt: skip
        self.proc.wait_http(f"{self.url}/-/ready", timeout)
        return self

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.stop()

    def __enter__(self) -> PrometheusServer:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    def api(self, path: str, **params: str) -> Any:
        """GET ``/api/v1/<path>`` and return its ``data``; raises ServerError unless ``status`` is success."""
        url = f"{self.url}/api/v1/{path}?{urllib.parse.urlencode(params)}"
        try:
            with LOOPBACK.open(url, timeout=DEFAULT_QUERY_TIMEOUT) as resp:
                body = json.load(resp)
        except urllib.error.HTTPError as exc:  # 400/422 carry the error in the body
            body = json.load(exc)
        if body.get("status") != "success":
            raise ServerError(f"{path} {params}: {body.get('errorType')}: {body.get('error')}")
        return body["data"]

    def query(self, expr: str) -> list[dict[str, Any]]:
        """Evaluate the PromQL instant query ``expr``; the list of ``{"metric": ..., "value": [t, v]}``."""
        data = self.api("query", query=expr)
        return data["result"] if data["resultType"] in ("vector", "matrix") else [{"metric": {}, "value": data["result"]}]

    def targets(self) -> list[dict[str, Any]]:
        """The active scrape targets with their ``health`` and ``lastError``."""
        return self.api("targets")["activeTargets"]

    def wait_for_series(self, expr: str, timeout: float = 30) -> list[dict[str, Any]]:
        """Poll ``expr`` until it returns at least one sample."""
        return wait_for(lambda: self.query(expr), timeout, 0.5, what=f"a sample of {expr}")
