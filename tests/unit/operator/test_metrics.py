"""The operator's Prometheus metrics: reconcile counts, durations and errors, and conditions per pipeline."""

from __future__ import annotations

import urllib.request
from types import SimpleNamespace

import pytest

from detectflow.cli.up import free_port
from detectflow.operator import metrics


def _value(name: str, **labels: str) -> float:
    return metrics.registry.get_sample_value(name, labels) or 0.0


def test_instrumented_counts_and_times_a_successful_reconcile() -> None:
    before = _value("detectflow_operator_reconciles_total", trigger="unit-ok", outcome="ok")
    wrapped = metrics.instrumented(lambda **kw: kw["x"] * 2, "unit-ok")
    assert wrapped(x=21) == 42
    assert _value("detectflow_operator_reconciles_total", trigger="unit-ok", outcome="ok") == before + 1
    assert _value("detectflow_operator_reconcile_duration_seconds_count", trigger="unit-ok") == before + 1


def test_instrumented_counts_an_error_by_its_class_and_reraises_it() -> None:
    def failing(**_):
        raise TimeoutError("api server")

    with pytest.raises(TimeoutError):
        metrics.instrumented(failing, "unit-err")(body={})
    assert _value("detectflow_operator_reconciles_total", trigger="unit-err", outcome="error") == 1
    assert _value("detectflow_operator_reconcile_errors_total", trigger="unit-err", error="TimeoutError") == 1
    assert _value("detectflow_operator_reconcile_duration_seconds_count", trigger="unit-err") == 1


def test_observe_conditions_exports_each_type_and_forget_drops_the_pipeline() -> None:
    conds = [SimpleNamespace(type="Ready", status="False"), SimpleNamespace(type="WorkersAvailable", status="True")]
    metrics.observe_conditions("ns1", "p1", conds)
    metrics.observe_conditions("ns1", "p2", conds[:1])
    assert metrics.registry.get_sample_value(
        "detectflow_operator_pipeline_condition", {"namespace": "ns1", "pipeline": "p1", "type": "Ready"}
    ) == 0.0
    assert _value("detectflow_operator_pipeline_condition", namespace="ns1", pipeline="p1", type="WorkersAvailable") == 1
    metrics.forget_pipeline("ns1", "p1")
    labels = {"namespace": "ns1", "pipeline": "p1", "type": "Ready"}
    assert metrics.registry.get_sample_value("detectflow_operator_pipeline_condition", labels) is None
    assert metrics.registry.get_sample_value(
        "detectflow_operator_pipeline_condition", {"namespace": "ns1", "pipeline": "p2", "type": "Ready"}
    ) == 0.0


def test_serve_exposes_the_registry_and_port_zero_serves_nothing() -> None:
    assert metrics.serve("127.0.0.1", 0) is None
    port = free_port()
    server = metrics.serve("127.0.0.1", port)
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as resp:
            text = resp.read().decode()
    finally:
        server.shutdown()
    assert "# TYPE detectflow_operator_reconciles_total counter" in text
