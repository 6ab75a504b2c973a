"""The worker's Prometheus metrics: what each hook counts, and the exporter on a real port."""

from __future__ import annotations

import urllib.request
from types import SimpleNamespace

from detectflow.cli.up import free_port
from detectflow.jobs.errors import DetectflowError, ErrorCode
from detectflow.jobs.results import DetectionResult, DetectionTimings, ImageSize, ModelRef
from detectflow.worker import metrics
from detectflow.worker.tasks.base import Outcome


def _value(name: str, **labels: str) -> float:
    return metrics.registry.get_sample_value(name, labels) or 0.0


def _outcome(queued_ms: float, inference_ms: float, batch: int = 1) -> Outcome:
    result = DetectionResult(
        image=ImageSize(width=4, height=4),
        detections=[],
        model=ModelRef(name="m", version="1", provider="CPUExecutionProvider", precision="fp32", sha256="0" * 64),
        timings_ms=DetectionTimings(queued=queued_ms, inference=inference_ms, total=queued_ms + inference_ms),
    )
    return Outcome(result, inference_ms / 1000, "", queued_ms / 1000, batch)


def test_job_finished_counts_the_outcome_and_observes_the_timings() -> None:
    before = _value("detectflow_worker_jobs_total", kind="unit-a", outcome="succeeded")
    metrics.job_finished("unit-a", "succeeded", _outcome(queued_ms=2500, inference_ms=40, batch=3))
    metrics.job_finished("unit-a", "failed")
    assert _value("detectflow_worker_jobs_total", kind="unit-a", outcome="succeeded") == before + 1
    assert _value("detectflow_worker_jobs_total", kind="unit-a", outcome="failed") == 1
    assert _value("detectflow_worker_inference_seconds_bucket", kind="unit-a", le="0.05") == 1
    assert _value("detectflow_worker_inference_seconds_bucket", kind="unit-a", le="0.025") == 0
    assert _value("detectflow_worker_queue_wait_seconds_sum", kind="unit-a") == 2.5
    assert _value("detectflow_worker_batch_size_count", kind="unit-a") == 1
    assert _value("detectflow_worker_batch_size_sum", kind="unit-a") == 3


def test_model_loaded_and_webhook_attempted_are_exported() -> None:
    metrics.model_loaded("unit-b", "retinaface", "CPUExecutionProvider", 1.25)
    metrics.webhook_attempted("unit-b", "retried")
    metrics.webhook_attempted("unit-b", "failed")
    assert _value(
        "detectflow_worker_model_load_seconds", kind="unit-b", model="retinaface", provider="CPUExecutionProvider"
    ) == 1.25
    assert _value("detectflow_worker_webhook_deliveries_total", kind="unit-b", outcome="failed") == 1


def test_worker_metrics_counts_failed_attempts_by_code_and_skips_of_its_actor_only() -> None:
    mw = metrics.WorkerMetrics("unit-c", "detect_unit", "127.0.0.1", 0)
    mine, other = SimpleNamespace(actor_name="detect_unit"), SimpleNamespace(actor_name="webhook")
    mw.after_process_message(None, mine, exception=DetectflowError(ErrorCode.image_expired, "gone"))
    mw.after_process_message(None, mine, exception=RuntimeError("boom"))
    mw.after_process_message(None, other, exception=RuntimeError("boom"))
    mw.after_process_message(None, mine, result=None)
    mw.after_skip_message(None, mine)
    assert _value("detectflow_worker_errors_total", kind="unit-c", code="image_expired") == 1
    assert _value("detectflow_worker_errors_total", kind="unit-c", code="worker_error") == 1
    assert _value("detectflow_worker_jobs_total", kind="unit-c", outcome="skipped") == 1


def test_worker_metrics_serves_the_registry_on_its_port_after_boot() -> None:
    port = free_port()
    mw = metrics.WorkerMetrics("unit-d", "detect_unit", "127.0.0.1", port)
    mw.after_process_boot(None)
    try:
        metrics.job_finished("unit-d", "failed")
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as resp:
            text = resp.read().decode()
    finally:
        mw.after_worker_shutdown(None, None)
    assert 'detectflow_worker_jobs_total{kind="unit-d",outcome="failed"} 1.0' in text


def test_worker_metrics_port_taken_is_not_fatal() -> None:
    port = free_port()
    first = metrics.WorkerMetrics("unit-e", "a", "127.0.0.1", port)
    second = metrics.WorkerMetrics("unit-e", "a", "127.0.0.1", port)
    first.after_process_boot(None)
    try:
        second.after_process_boot(None)  # another process of the same worker already serves the port
        assert second.server is None and first.server is not None
    finally:
        first.after_worker_shutdown(None, None)
