"""The generated CRD: drift, structural schema, defaults, and the examples against it."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import jsonschema
import pytest

from detectflow.operator.crd import DetectionPipeline, dump_crd, render_crd
from tests.unit.operator.conftest import INVALID, VALID, load

ROOT = Path(__file__).resolve().parents[3]
EXAMPLES = sorted((ROOT / "docs" / "examples").glob("*.yaml"))


def _schema() -> dict[str, Any]:
    return render_crd()["spec"]["versions"][0]["schema"]["openAPIV3Schema"]


def test_crd_matches_committed_file() -> None:
    committed = (ROOT / "crds" / "detectionpipeline.yaml").read_text()
    assert committed == dump_crd(), "regenerate: python -m detectflow.operator.crd > crds/detectionpipeline.yaml"


def _walk(node: dict[str, Any], path: str = ""):
    yield path, node
    for name, sub in (node.get("properties") or {}).items():
        yield from _walk(sub, f"{path}.{name}")
    if isinstance(node.get("additionalProperties"), dict):
        yield from _walk(node["additionalProperties"], f"{path}{{}}")
    if "items" in node:
        yield from _walk(node["items"], f"{path}[]")


def test_crd_schema_is_structural() -> None:
    # Every node has a type (or is int-or-string), and no JSON-schema construct the
    # apiserver refuses ($ref, nullable unions, titles) survives the conversion.
    for path, node in _walk(_schema()):
        assert "type" in node or node.get("x-kubernetes-int-or-string"), path
        assert not {"$ref", "$defs", "title", "allOf", "oneOf"} & set(node), path
        if "anyOf" in node:
            assert node.get("x-kubernetes-int-or-string"), path


def test_crd_has_status_subresource_short_name_and_printer_columns() -> None:
    crd = render_crd()
    version = crd["spec"]["versions"][0]
    assert version["subresources"] == {"status": {}}
    assert crd["spec"]["names"]["shortNames"] == ["dp"]
    columns = [c["name"] for c in version["additionalPrinterColumns"] if not c.get("priority")]
    assert columns == ["Ready", "Workers", "Queue", "Age"]


def test_crd_workers_are_a_list_map_keyed_by_name() -> None:
    workers = _schema()["properties"]["spec"]["properties"]["workers"]
    assert workers["x-kubernetes-list-type"] == "map"
    assert workers["x-kubernetes-list-map-keys"] == ["name"]


def test_crd_cel_rules_bound_their_cost() -> None:
    # CEL on strings and lists needs maxLength/maxItems or the apiserver refuses the CRD.
    spec = _schema()["properties"]["spec"]
    assert spec["properties"]["workers"]["maxItems"] <= 16
    assert spec["properties"]["redis"]["properties"]["url"]["maxLength"] <= 512


@pytest.mark.parametrize("path", EXAMPLES + VALID, ids=lambda p: f"{p.parent.name}/{p.stem}")
def test_crd_schema_accepts_examples(path: Path) -> None:
    # The OpenAPI subset used is plain JSON schema, so jsonschema checks types, enums and bounds.
    doc = load(path)
    jsonschema.validate(doc["spec"], _schema()["properties"]["spec"])
    DetectionPipeline.from_body(doc)


def test_crd_defaults_equal_model_defaults() -> None:
    # A sparse spec defaulted by the schema's `default`s parses to the same model as the
    # model's own defaults, so the apiserver and the operator agree.
    spec = {"redis": {"address": "r:6379"}, "workers": [{"name": "f", "task": "face"}]}
    defaulted = _apply_defaults(spec, _schema()["properties"]["spec"])
    body = {"metadata": {"name": "x", "namespace": "n"}}
    assert DetectionPipeline.from_body({**body, "spec": defaulted}) == DetectionPipeline.from_body(
        {**body, "spec": spec}
    )
    assert defaulted["workers"][0]["autoscaling"]["minReplicas"] == 1
    assert defaulted["api"]["resultTTLSeconds"] == 86400


def _apply_defaults(value: Any, node: dict[str, Any]) -> Any:
    if isinstance(value, dict) and "properties" in node:
        out = dict(value)
        for name, sub in node["properties"].items():
            if name not in out and "default" in sub:
                out[name] = sub["default"]
            if name in out:
                out[name] = _apply_defaults(out[name], sub)
        return out
    if isinstance(value, list) and "items" in node:
        return [_apply_defaults(v, node["items"]) for v in value]
    return value


def test_crd_invalid_inputs_exist_for_each_rule_family() -> None:
    assert len(INVALID) >= 8


def test_crd_every_spec_field_is_documented() -> None:
    doc = (ROOT / "docs" / "crd.md").read_text()

    def paths(node: dict[str, Any], prefix: str):
        for name, sub in (node.get("properties") or {}).items():
            yield f"{prefix}.{name}"
            yield from paths(sub, f"{prefix}.{name}")
            if sub.get("type") == "array":
                yield from paths(sub["items"], f"{prefix}.{name}[]")

    missing = [p for p in paths(_schema()["properties"]["spec"], "spec") if f"`{p}`" not in doc]
    assert not missing, f"add to docs/crd.md: {missing}"
