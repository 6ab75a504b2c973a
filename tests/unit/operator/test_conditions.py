"""Conditions and status built from an observation (pure)."""

from __future__ import annotations

from typing import Any

from detectflow.operator.conditions import (
    Observation,
    Problem,
    build_conditions,
    deployment_state,
    find,
    invalid_spec,
    is_ready,
    transitions,
)
from detectflow.operator.status import build_status

T0 = "2026-01-01T00:00:00Z"
T1 = "2026-01-01T00:01:00Z"


def deployment(replicas: int = 1, ready: int = 1, generation: int = 1, observed: int = 1) -> dict[str, Any]:
    return {
        "metadata": {"generation": generation},
        "spec": {"replicas": replicas},
        "status": {
            "observedGeneration": observed,
            "replicas": replicas,
            "updatedReplicas": replicas,
            "readyReplicas": ready,
        },
    }


def scaled_object(ready: str | None = None) -> dict[str, Any]:
    status = {"conditions": [{"type": "Ready", "status": ready, "message": "m"}]} if ready else {}
    return {"status": status}


def healthy() -> Observation:
    return Observation(api=deployment(2, 2), workers={"f": deployment()}, scaled_objects={"f": scaled_object()})


def status_of(conds: list[dict[str, Any]], type_: str) -> tuple[str, str]:
    c = find(conds, type_)
    assert c is not None
    return c["status"], c["reason"]


def test_conditions_ready_when_everything_is_available() -> None:
    conds = build_conditions(healthy(), 3, [], T0)
    assert [c["type"] for c in conds] == ["Ready", "APIReady", "WorkersReady", "AutoscalingReady", "Degraded"]
    assert is_ready(conds)
    assert status_of(conds, "Degraded") == ("False", "AsExpected")
    assert status_of(conds, "AutoscalingReady") == ("True", "ScaledObjectsApplied")
    assert all(c["observedGeneration"] == 3 and c["lastTransitionTime"] == T0 for c in conds)


def test_conditions_not_ready_while_api_pods_are_not_ready() -> None:
    obs = healthy()
    obs.api = deployment(2, 1)
    conds = build_conditions(obs, 1, [], T0)
    assert status_of(conds, "APIReady") == ("False", "PodsNotReady")
    assert status_of(conds, "Ready") == ("False", "PodsNotReady")
    assert "APIReady" in find(conds, "Ready")["message"]


def test_conditions_rollout_in_progress_on_new_generation() -> None:
    obs = healthy()
    obs.workers["f"] = deployment(generation=2, observed=1)
    assert status_of(build_conditions(obs, 1, [], T0), "WorkersReady") == ("False", "RolloutInProgress")


def test_conditions_worker_scaled_to_zero_counts_as_ready() -> None:
    obs = healthy()
    obs.workers["f"] = deployment(replicas=0, ready=0)
    assert is_ready(build_conditions(obs, 1, [], T0))


def test_conditions_missing_children_are_not_found() -> None:
    conds = build_conditions(Observation(workers={"f": None}, scaled_objects={"f": None}), 1, [], T0)
    assert status_of(conds, "APIReady") == ("False", "NotFound")
    assert status_of(conds, "WorkersReady") == ("False", "NotFound")
    assert status_of(conds, "AutoscalingReady")[0] == "False"


def test_conditions_keda_not_installed_is_degraded_not_a_crash() -> None:
    obs = healthy()
    obs.keda_installed = False
    conds = build_conditions(obs, 1, [], T0)
    assert status_of(conds, "AutoscalingReady") == ("False", "KedaNotInstalled")
    assert status_of(conds, "Degraded") == ("True", "KedaNotInstalled")
    assert status_of(conds, "Ready") == ("False", "KedaNotInstalled")


def test_conditions_missing_secret_sets_degraded_with_reason() -> None:
    obs = healthy()
    obs.problems.append(Problem("SecretNotFound", "Secret redis-auth with key password not found in ns"))
    conds = build_conditions(obs, 1, [], T0)
    assert status_of(conds, "Degraded") == ("True", "SecretNotFound")
    assert "redis-auth" in find(conds, "Ready")["message"]


def test_conditions_keda_reports_scaled_object_not_ready() -> None:
    obs = healthy()
    obs.scaled_objects["f"] = scaled_object("False")
    assert status_of(build_conditions(obs, 1, [], T0), "AutoscalingReady") == ("False", "ScaledObjectNotReady")
    obs.scaled_objects["f"] = scaled_object("True")
    assert status_of(build_conditions(obs, 1, [], T0), "AutoscalingReady") == ("True", "ScaledObjectsReady")


def test_conditions_keep_transition_time_while_status_is_unchanged() -> None:
    first = build_conditions(healthy(), 1, [], T0)
    again = build_conditions(healthy(), 2, first, T1)
    assert all(c["lastTransitionTime"] == T0 for c in again)
    broken = healthy()
    broken.api = None
    changed = build_conditions(broken, 2, first, T1)
    assert find(changed, "APIReady")["lastTransitionTime"] == T1
    assert find(changed, "WorkersReady")["lastTransitionTime"] == T0


def test_conditions_transitions_report_ready_and_degraded_changes() -> None:
    first = build_conditions(healthy(), 1, [], T0)
    assert [c["type"] for c in transitions([], first)] == ["Ready", "Degraded"]
    assert transitions(first, build_conditions(healthy(), 1, first, T1)) == []
    starting = build_conditions(Observation(workers={"f": None}), 1, [], T0)
    assert [c["type"] for c in transitions([], starting)] == ["Degraded"]  # no ReadyFalse on create
    broken = healthy()
    broken.problems.append(Problem("ApplyFailed", "x"))
    assert {c["type"] for c in transitions(first, build_conditions(broken, 1, first, T1))} == {"Ready", "Degraded"}


def test_conditions_invalid_spec_marks_degraded() -> None:
    conds = invalid_spec("bad", 4, [], T0)
    assert status_of(conds, "Degraded") == ("True", "InvalidSpec")
    assert not is_ready(conds)


def test_deployment_state_reports_progress_deadline() -> None:
    dep = deployment()
    dep["status"]["conditions"] = [{"type": "Progressing", "reason": "ProgressDeadlineExceeded", "message": "m"}]
    assert deployment_state(dep, "x")[:2] == (False, "ProgressDeadlineExceeded")


def test_status_sums_queue_depth_and_counts_ready_workers(make_pipeline) -> None:
    pipeline = make_pipeline(
        {"redis": {"address": "r:6379"}, "workers": [{"name": "f", "task": "face"}, {"name": "o", "task": "object"}]}
    )
    obs = Observation(api=deployment(), workers={"f": deployment(), "o": deployment(2, 1)})
    status = build_status(pipeline, obs, {"f": 3, "o": 4}, {}, T0)
    assert status["readyWorkers"] == "1/2"
    assert status["queueDepth"] == 7
    assert status["observedGeneration"] == 3
    assert status["endpoint"] == "http://demo-api.ns.svc:8000"
    assert status["workers"][1] == {"name": "o", "task": "object", "desiredReplicas": 2, "readyReplicas": 1, "queueDepth": 4}
    unreachable = build_status(pipeline, obs, {"f": None, "o": None}, {}, T0)
    assert unreachable["queueDepth"] is None
    assert "queueDepth" not in unreachable["workers"][0]
