"""Conditions and status built from an observation (pure)."""

from __future__ import annotations

from typing import Any

import pytest

from detectflow.operator import conditions, status
from detectflow.operator.conditions import (
    ChildState,
    Observation,
    Problem,
    build_conditions,
    deployment_state,
    evaluate,
    find,
    invalid_spec,
    is_ready,
    parse_conditions,
    transitions,
)
from detectflow.operator.crd import Condition, DetectionPipelineStatus
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


def conditions_of(obs: Observation, generation: int, previous: list[Condition], now: str) -> list[Condition]:
    return build_conditions(evaluate(obs), generation, previous, now)


def status_of(conds: list[Condition], type_: str) -> tuple[str, str]:
    c = find(conds, type_)
    assert c is not None
    return c.status, c.reason


def test_conditions_ready_when_everything_is_available() -> None:
    conds = conditions_of(healthy(), 3, [], T0)
    assert [c.type for c in conds] == ["Ready", "APIReady", "WorkersReady", "AutoscalingReady", "Degraded"]
    assert is_ready(conds)
    assert status_of(conds, "Degraded") == ("False", "AsExpected")
    assert status_of(conds, "AutoscalingReady") == ("True", "ScaledObjectsApplied")
    assert all(c.observed_generation == 3 and c.last_transition_time == T0 for c in conds)


def test_conditions_not_ready_while_api_pods_are_not_ready() -> None:
    obs = healthy()
    obs.api = deployment(2, 1)
    conds = conditions_of(obs, 1, [], T0)
    assert status_of(conds, "APIReady") == ("False", "PodsNotReady")
    assert status_of(conds, "Ready") == ("False", "PodsNotReady")
    assert "APIReady" in find(conds, "Ready").message


def test_conditions_rollout_in_progress_on_new_generation() -> None:
    obs = healthy()
    obs.workers["f"] = deployment(generation=2, observed=1)
    assert status_of(conditions_of(obs, 1, [], T0), "WorkersReady") == ("False", "RolloutInProgress")


def test_conditions_worker_scaled_to_zero_counts_as_ready() -> None:
    obs = healthy()
    obs.workers["f"] = deployment(replicas=0, ready=0)
    assert is_ready(conditions_of(obs, 1, [], T0))


def test_conditions_missing_children_are_not_found() -> None:
    conds = conditions_of(Observation(workers={"f": None}, scaled_objects={"f": None}), 1, [], T0)
    assert status_of(conds, "APIReady") == ("False", "NotFound")
    assert status_of(conds, "WorkersReady") == ("False", "NotFound")
    assert status_of(conds, "AutoscalingReady")[0] == "False"


def test_conditions_keda_not_installed_is_degraded_not_a_crash() -> None:
    obs = healthy()
    obs.keda_installed = False
    conds = conditions_of(obs, 1, [], T0)
    assert status_of(conds, "AutoscalingReady") == ("False", "KedaNotInstalled")
    assert status_of(conds, "Degraded") == ("True", "KedaNotInstalled")
    assert status_of(conds, "Ready") == ("False", "KedaNotInstalled")


def test_conditions_missing_secret_sets_degraded_with_reason() -> None:
    obs = healthy()
    obs.problems.append(Problem("SecretNotFound", "Secret redis-auth with key password not found in ns"))
    conds = conditions_of(obs, 1, [], T0)
    assert status_of(conds, "Degraded") == ("True", "SecretNotFound")
    assert "redis-auth" in find(conds, "Ready").message


def test_conditions_keda_reports_scaled_object_not_ready() -> None:
    obs = healthy()
    obs.scaled_objects["f"] = scaled_object("False")
    assert status_of(conditions_of(obs, 1, [], T0), "AutoscalingReady") == ("False", "ScaledObjectNotReady")
    obs.scaled_objects["f"] = scaled_object("True")
    assert status_of(conditions_of(obs, 1, [], T0), "AutoscalingReady") == ("True", "ScaledObjectsReady")


def test_conditions_keep_transition_time_while_status_is_unchanged() -> None:
    first = conditions_of(healthy(), 1, [], T0)
    again = conditions_of(healthy(), 2, first, T1)
    assert all(c.last_transition_time == T0 for c in again)
    broken = healthy()
    broken.api = None
    changed = conditions_of(broken, 2, first, T1)
    assert find(changed, "APIReady").last_transition_time == T1
    assert find(changed, "WorkersReady").last_transition_time == T0


def test_conditions_transitions_report_ready_and_degraded_changes() -> None:
    first = conditions_of(healthy(), 1, [], T0)
    assert [c.type for c in transitions([], first)] == ["Ready", "Degraded"]
    assert transitions(first, conditions_of(healthy(), 1, first, T1)) == []
    starting = conditions_of(Observation(workers={"f": None}), 1, [], T0)
    assert [c.type for c in transitions([], starting)] == ["Degraded"]  # no ReadyFalse on create
    broken = healthy()
    broken.problems.append(Problem("ApplyFailed", "x"))
    assert {c.type for c in transitions(first, conditions_of(broken, 1, first, T1))} == {"Ready", "Degraded"}


def test_conditions_invalid_spec_marks_degraded() -> None:
    conds = invalid_spec("bad", 4, [], T0)
    assert status_of(conds, "Degraded") == ("True", "InvalidSpec")
    assert not is_ready(conds)


def test_deployment_state_reports_progress_deadline() -> None:
    dep = deployment()
    dep["status"]["conditions"] = [{"type": "Progressing", "reason": "ProgressDeadlineExceeded", "message": "m"}]
    state = deployment_state(dep, "x")
    assert (state.ok, state.reason) == (False, "ProgressDeadlineExceeded")


def test_evaluate_judges_each_child() -> None:
    obs = healthy()
    obs.workers["g"] = None
    ev = evaluate(obs)
    assert ev.api == ChildState(True, "Available", "API Deployment: 2/2 pods ready")
    assert list(ev.workers) == ["f", "g"] and ev.workers["g"].reason == "NotFound"
    assert ev.scaled_objects["f"].ok is None  # KEDA has not reported
    assert ev.scaled_objects["g"] == ChildState(False, "NotFound", "ScaledObject of worker g does not exist yet")


def two_workers(make_pipeline):
    return make_pipeline(
        {"redis": {"address": "r:6379"}, "workers": [{"name": "f", "task": "face"}, {"name": "o", "task": "object"}]}
    )


def test_status_sums_queue_depth_and_counts_ready_workers(make_pipeline) -> None:
    pipeline = two_workers(make_pipeline)
    obs = Observation(api=deployment(), workers={"f": deployment(), "o": deployment(2, 1)})
    status = build_status(pipeline, obs, {"f": 3, "o": 4}, [], T0).model_dump(by_alias=True, mode="json")
    assert status["readyWorkers"] == "1/2"
    assert status["queueDepth"] == 7
    assert status["observedGeneration"] == 3
    assert status["endpoint"] == "http://demo-api.ns.svc:8000"
    assert status["workers"][1] == {"name": "o", "task": "object", "desiredReplicas": 2, "readyReplicas": 1, "queueDepth": 4}
    unreachable = build_status(pipeline, obs, {"f": None, "o": None}, [], T0).model_dump(by_alias=True, mode="json")
    assert "queueDepth" in unreachable and unreachable["queueDepth"] is None  # null clears the old total in the patch
    assert "queueDepth" not in unreachable["workers"][0]


def test_status_dumps_the_keys_the_crd_declares(make_pipeline) -> None:
    status = build_status(two_workers(make_pipeline), healthy(), {"f": 1}, [], T0)
    written = status.model_dump(by_alias=True, mode="json")
    assert list(written) == ["observedGeneration", "conditions", "workers", "readyWorkers", "queueDepth", "endpoint"]
    assert [list(c) for c in written["conditions"]] == [
        ["type", "status", "reason", "message", "lastTransitionTime", "observedGeneration"]
    ] * 5
    assert DetectionPipelineStatus.model_validate(written) == status
    assert parse_conditions(written["conditions"]) == status.conditions


def test_status_evaluates_each_child_once(make_pipeline, monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[str] = []

    def counted(real):
        def wrapper(child: Any, name: str) -> ChildState:
            calls.append(f"{real.__name__}({name})")
            return real(child, name)

        return wrapper

    monkeypatch.setattr(conditions, "deployment_state", counted(conditions.deployment_state))
    monkeypatch.setattr(conditions, "scaled_object_state", counted(conditions.scaled_object_state))
    obs = Observation(
        api=deployment(),
        workers={"f": deployment(), "o": deployment(2, 1)},
        scaled_objects={"f": scaled_object("True"), "o": None},
    )
    build_status(two_workers(make_pipeline), obs, {"f": 0, "o": 0}, [], T0)
    assert not hasattr(status, "deployment_state")  # status judges nothing itself: only through evaluate()
    assert sorted(calls) == [
        "deployment_state(API Deployment)",
        "deployment_state(worker f)",
        "deployment_state(worker o)",
        "scaled_object_state(f)",
        "scaled_object_state(o)",
    ]


def test_parse_conditions_skips_entries_that_are_not_conditions() -> None:
    good = conditions_of(healthy(), 1, [], T0)[0].model_dump(by_alias=True, mode="json")
    assert parse_conditions([good, {"type": "Ready"}, "junk"]) == [Condition.model_validate(good)]
    assert parse_conditions(None) == [] and parse_conditions({"type": "Ready"}) == []
