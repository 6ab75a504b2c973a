"""The operator in-cluster writes structured JSON logs: one kopf JSON object per line, naming the pipeline."""

from __future__ import annotations

import json

from tests.operator.conftest import wait_until
from tests.support.cluster import ClusterInfo

from detectflow.operator.crd import dump_yaml


def test_operator_logs_one_json_object_per_line(crds: ClusterInfo, namespace: str, operator) -> None:
    # Given the operator logging to a file, as in a pod (no terminal: --log-format auto is JSON)
    pipeline = {
        "apiVersion": "detectflow.io/v1alpha1", "kind": "DetectionPipeline",
        "metadata": {"name": "logs", "namespace": namespace},
        "spec": {"redis": {"address": "127.0.0.1:1"}, "workers": [{"name": "face", "task": "face"}]},
    }  # fmt: skip
    # When it reconciles a pipeline
    crds.apply(dump_yaml(pipeline))
    log = operator.logs[-1]
    lines = wait_until(
        lambda: (ls := [ln for ln in log.read_text().splitlines() if '"logs"' in ln]) and ls,
        "a log line about the pipeline", operator,
    )  # fmt: skip
    # Then every line is a JSON object, and the pipeline's lines say which object they are about
    records = [json.loads(ln) for ln in log.read_text().splitlines() if ln.strip()]
    assert all({"message", "severity", "timestamp"} <= set(r) for r in records)
    about = [json.loads(ln) for ln in lines]
    assert any(r.get("object", {}).get("name") == "logs" for r in about)
