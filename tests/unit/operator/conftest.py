"""Fixtures for the operator's unit tests: golden render inputs and a parsed pipeline factory."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from detectflow.operator.crd import DetectionPipeline

DATA = Path(__file__).resolve().parents[2] / "data" / "render"
INPUTS = sorted((DATA / "input").glob("*.yaml"))
VALID = [p for p in INPUTS if (DATA / "output" / p.name).exists()]
INVALID = [p for p in INPUTS if not (DATA / "output" / p.name).exists()]


def load(path: Path) -> dict[str, Any]:
    return yaml.safe_load(path.read_text())


def expected_error(path: Path) -> str:
    """The ``# error: ...`` first line of an invalid input."""
    first = path.read_text().splitlines()[0]
    assert first.startswith("# error: "), f"{path.name}: an input without output needs '# error: <message>'"
    return first.removeprefix("# error: ").strip()


@pytest.fixture
def make_pipeline():
    """Build a parsed pipeline from a spec dict (name 'demo', namespace 'ns', a fixed uid)."""

    def make(spec: dict[str, Any], name: str = "demo", uid: str = "uid-1") -> DetectionPipeline:
        return DetectionPipeline.from_body(
            {"metadata": {"name": name, "namespace": "ns", "uid": uid, "generation": 3}, "spec": spec}
        )

    return make
