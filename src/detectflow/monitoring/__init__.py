"""The monitoring bundle: alert rules and the Grafana dashboard, one source for the chart and the tests."""

from __future__ import annotations

import json
import re
from importlib import resources
from pathlib import Path
from typing import Any

import yaml

__all__ = [
    "CHART_FILES",
    "alert_expressions",
    "dashboard",
    "dashboard_expressions",
    "dashboard_text",
    "metric_names",
    "rules",
    "rules_text",
    "sync_chart",
]

#: The bundle's files, by name, as the chart carries them under charts/detectflow/files/.
CHART_FILES = ("rules.yaml", "dashboard.json")

# A metric name in PromQL: detectflow_ then name characters; label names inside {...} and by (...) never start
# with the prefix, and the dashboard's template variables ($namespace) are not names.
_METRIC = re.compile(r"\b(detectflow_[a-zA-Z0-9_]+)\b")


def _text(name: str) -> str:
    return resources.files(__package__).joinpath(name).read_text()


def rules_text() -> str:
    """The rule file (Prometheus rule-file YAML: ``groups``), as stored."""
    return _text("rules.yaml")


def dashboard_text() -> str:
    """The Grafana dashboard JSON, as stored."""
    return _text("dashboard.json")


def rules() -> dict[str, Any]:
    """The parsed rule file: ``{"groups": [...]}``, the ``spec`` of a PrometheusRule."""
    return yaml.safe_load(rules_text())


def dashboard() -> dict[str, Any]:
    """The parsed Grafana dashboard."""
    return json.loads(dashboard_text())


def alert_expressions(doc: dict[str, Any] | None = None) -> dict[str, str]:
    """Each alert's PromQL expression, by alert name."""
    doc = rules() if doc is None else doc
    return {r["alert"]: r["expr"] for g in doc["groups"] for r in g["rules"] if "alert" in r}


def dashboard_expressions(doc: dict[str, Any] | None = None) -> dict[str, str]:
    """Each panel target's PromQL expression, keyed ``<panel title>/<refId>``; rows hold no query."""
    doc = dashboard() if doc is None else doc
    out = {}
    for panel in doc["panels"]:
        for target in panel.get("targets", []):
            out[f"{panel['title']}/{target['refId']}"] = target["expr"]
    return out


def metric_names(expr: str) -> set[str]:
    """The detectflow metric names an expression reads (as exposed: ``_total``, ``_bucket`` included)."""
    return set(_METRIC.findall(expr))


def sync_chart(chart_dir: Path) -> list[Path]:
    """Write the bundle's files into ``<chart_dir>/files/``; returns the paths written.

    Parameters
    ----------
    chart_dir
        The chart's directory (``charts/detectflow``).
    """
    out = []
    for name in CHART_FILES:
        path = Path(chart_dir) / "files" / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(_text(name))
        out.append(path)
    return out

