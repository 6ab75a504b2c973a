"""keda/*.yaml are exactly what the operator renders for keda/pipeline.yaml (golden files)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import yaml

from detectflow.operator.crd import DetectionPipeline, dump_yaml
from detectflow.operator.render import owner_reference, render_scaled_object, render_trigger_authentication

ROOT = Path(__file__).resolve().parents[2]
KEDA = ROOT / "keda"
HEADER = (
    "# Generated from keda/pipeline.yaml by detectflow.operator.render.{fn}; do not edit by hand\n"
    "# (DETECTFLOW_UPDATE_GOLDEN=1 pytest tests/keda/test_golden.py). See keda/README.md.\n"
)


def _pipeline() -> DetectionPipeline:
    return DetectionPipeline.from_body(yaml.safe_load((KEDA / "pipeline.yaml").read_text()))


def _rendered() -> dict[str, str]:
    pipeline = _pipeline()
    owner = owner_reference(pipeline)  # no uid in a file: the manifests carry no ownerReferences
    worker = pipeline.spec.workers[0]
    auth = render_trigger_authentication(pipeline, owner)
    assert auth is not None
    return {
        "scaledobject.yaml": HEADER.format(fn="render_scaled_object") + dump_yaml(
            render_scaled_object(pipeline, worker, owner)
        ),
        "triggerauthentication.yaml": HEADER.format(fn="render_trigger_authentication") + dump_yaml(auth),
    }


@pytest.mark.parametrize("name", ["scaledobject.yaml", "triggerauthentication.yaml"])
def test_keda_reference_manifest_matches_render(name: str) -> None:
    text = _rendered()[name]
    path = KEDA / name
    if os.environ.get("DETECTFLOW_UPDATE_GOLDEN"):
        path.write_text(text)
    assert path.read_text() == text, f"keda/{name} drifted from the operator: regenerate and review it"


def test_keda_reference_scaled_object_counts_unfinished_and_delayed_work() -> None:
    # The README's claims about the example, checked on the file itself.
    so = yaml.safe_load((KEDA / "scaledobject.yaml").read_text())
    prefix = "detectflow:vision:photos"
    triggers = {t["name"]: t["metadata"] for t in so["spec"]["triggers"]}
    assert triggers["unfinished"]["listName"] == f"{prefix}:detect.face.msgs"
    assert triggers["delayed"]["listName"] == f"{prefix}:detect.face.DQ.msgs"
    assert all(t["activationListLength"] == "0" and t["listLength"] == "2" for t in triggers.values())
    assert all(isinstance(v, str) for t in triggers.values() for v in t.values())  # KEDA wants strings
    assert so["spec"]["advanced"]["scalingModifiers"]["formula"] == "unfinished + delayed"
    assert so["spec"]["minReplicaCount"] == 0 and so["spec"]["pollingInterval"] == 5
    assert all(t["authenticationRef"] == {"name": "photos-redis"} for t in so["spec"]["triggers"])
    assert "password" not in str(triggers)  # credentials only through the TriggerAuthentication
