"""Status conditions of a DetectionPipeline, derived from what the operator observed."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

import pydantic

from detectflow.operator.crd import Condition

__all__ = [
    "READY",
    "API_READY",
    "WORKERS_READY",
    "AUTOSCALING_READY",
    "DEGRADED",
    "CONDITION_TYPES",
    "ChildState",
    "Evaluation",
    "Observation",
    "Problem",
    "build_conditions",
    "deployment_state",
    "evaluate",
    "find",
    "invalid_spec",
    "is_ready",
    "parse_conditions",
    "scaled_object_state",
    "transitions",
]

READY = "Ready"
API_READY = "APIReady"
WORKERS_READY = "WorkersReady"
AUTOSCALING_READY = "AutoscalingReady"
DEGRADED = "Degraded"
#: Condition types, in the order they appear in status.
CONDITION_TYPES = (READY, API_READY, WORKERS_READY, AUTOSCALING_READY, DEGRADED)

# Reasons (CamelCase constants).
PIPELINE_READY = "PipelineReady"
AVAILABLE = "Available"
NOT_FOUND = "NotFound"
ROLLOUT_IN_PROGRESS = "RolloutInProgress"
PODS_NOT_READY = "PodsNotReady"
PROGRESS_DEADLINE_EXCEEDED = "ProgressDeadlineExceeded"
SCALED_OBJECT_READY = "ScaledObjectReady"
SCALED_OBJECTS_READY = "ScaledObjectsReady"
SCALED_OBJECTS_APPLIED = "ScaledObjectsApplied"
SCALED_OBJECT_NOT_READY = "ScaledObjectNotReady"
NOT_REPORTED = "NotReported"
KEDA_NOT_INSTALLED = "KedaNotInstalled"
SECRET_NOT_FOUND = "SecretNotFound"
SECRET_NOT_LABELLED = "SecretNotLabelled"
CONFLICT = "Conflict"
APPLY_FAILED = "ApplyFailed"
FORBIDDEN = "Forbidden"
INVALID_SPEC = "InvalidSpec"
AS_EXPECTED = "AsExpected"

ConditionStatus = Literal["True", "False", "Unknown"]
# (status, reason, message) of one condition before it gets its times.
_Value = tuple[ConditionStatus, str, str]


@dataclass(frozen=True)
class Problem:
    """Something that keeps the pipeline from being served as specified (sets Degraded)."""

    reason: str
    message: str


@dataclass
class Observation:
    """What one reconcile saw: live children and the problems met on the way."""

    #: The live API Deployment, or None when absent.
    api: dict[str, Any] | None = None
    #: Worker name -> live Deployment (None when absent).
    workers: dict[str, dict[str, Any] | None] = field(default_factory=dict)
    #: Worker name -> live ScaledObject (None when absent).
    scaled_objects: dict[str, dict[str, Any] | None] = field(default_factory=dict)
    #: False when the keda.sh API group is not served.
    keda_installed: bool = True
    problems: list[Problem] = field(default_factory=list)


@dataclass(frozen=True)
class ChildState:
    """The verdict on one child: ``ok`` is None while its controller has not reported (ScaledObjects only)."""

    ok: bool | None
    reason: str
    message: str


@dataclass(frozen=True)
class Evaluation:
    """Every child of one reconcile, judged once; conditions and status read only this."""

    #: The API Deployment.
    api: ChildState
    #: Worker name -> its Deployment, sorted by name.
    workers: dict[str, ChildState]
    #: Worker name -> its ScaledObject, sorted by name.
    scaled_objects: dict[str, ChildState]
    keda_installed: bool
    problems: tuple[Problem, ...]


def find(conditions: list[Condition], type_: str) -> Condition | None:
    """The condition of ``type_`` in ``conditions``, or None."""
    return next((c for c in conditions if c.type == type_), None)


def is_ready(conditions: list[Condition]) -> bool:
    """Whether the Ready condition is True."""
    ready = find(conditions, READY)
    return bool(ready and ready.status == "True")


def parse_conditions(raw: Any) -> list[Condition]:
    """The conditions of a live ``status.conditions`` value, skipping entries that are not conditions.

    Parameters
    ----------
    raw
        ``status.conditions`` as read from the object (a list of dicts, or None).

    Returns
    -------
    list of Condition
        The valid ones, in order; a skipped one simply gets a new ``lastTransitionTime``.
    """
    out = []
    for item in raw if isinstance(raw, list) else []:
        try:
            out.append(Condition.model_validate(item))
        except pydantic.ValidationError:
            continue
    return out


def deployment_state(deployment: Mapping[str, Any] | None, what: str) -> ChildState:
    """Whether a Deployment has rolled out and all its pods are ready.

    Parameters
    ----------
    deployment
        The live Deployment, or None.
    what
        How to name it in messages.

    Returns
    -------
    ChildState
        ``ok`` is True once rolled out with every pod ready.
    """
    if deployment is None:
        return ChildState(False, NOT_FOUND, f"{what} does not exist yet")
    spec = deployment.get("spec") or {}
    status = deployment.get("status") or {}
    generation = (deployment.get("metadata") or {}).get("generation", 0)
    for cond in status.get("conditions") or []:
        if cond.get("type") == "Progressing" and cond.get("reason") == "ProgressDeadlineExceeded":
            return ChildState(False, PROGRESS_DEADLINE_EXCEEDED, f"{what}: {cond.get('message', '')}".strip())
    desired = spec.get("replicas", 1)
    updated = status.get("updatedReplicas", 0)
    total = status.get("replicas", 0)
    ready = status.get("readyReplicas", 0)
    if status.get("observedGeneration", 0) < generation or updated < desired or total > updated:
        return ChildState(False, ROLLOUT_IN_PROGRESS, f"{what}: {updated}/{desired} pods updated, {total} total")
    if ready < desired:
        return ChildState(False, PODS_NOT_READY, f"{what}: {ready}/{desired} pods ready")
    return ChildState(True, AVAILABLE, f"{what}: {ready}/{desired} pods ready")


def scaled_object_state(scaled_object: Mapping[str, Any] | None, worker: str) -> ChildState:
    """What KEDA reports on a worker's ScaledObject.

    Parameters
    ----------
    scaled_object
        The live ScaledObject, or None.
    worker
        The worker's name (for messages).

    Returns
    -------
    ChildState
        ``ok`` from KEDA's Ready condition; None while KEDA has not reported.
    """
    if scaled_object is None:
        return ChildState(False, NOT_FOUND, f"ScaledObject of worker {worker} does not exist yet")
    for cond in (scaled_object.get("status") or {}).get("conditions") or []:
        if cond.get("type") == "Ready" and cond.get("status") in ("True", "False"):
            ok = cond["status"] == "True"
            message = f"worker {worker}: {cond.get('message') or cond.get('reason') or ''}".strip()
            return ChildState(ok, SCALED_OBJECT_READY if ok else SCALED_OBJECT_NOT_READY, message)
    return ChildState(None, NOT_REPORTED, f"worker {worker}: KEDA has not reported yet")


def evaluate(obs: Observation) -> Evaluation:
    """Judge each child of one observation exactly once.

    Parameters
    ----------
    obs
        What the reconcile observed.

    Returns
    -------
    Evaluation
        The API Deployment, each worker Deployment and each worker's ScaledObject.
    """
    names = sorted(obs.workers)
    return Evaluation(
        api=deployment_state(obs.api, "API Deployment"),
        workers={name: deployment_state(obs.workers[name], f"worker {name}") for name in names},
        scaled_objects={name: scaled_object_state(obs.scaled_objects.get(name), name) for name in names},
        keda_installed=obs.keda_installed,
        problems=tuple(obs.problems),
    )


def _api(ev: Evaluation) -> _Value:
    return ("True" if ev.api.ok else "False"), ev.api.reason, ev.api.message


def _workers(ev: Evaluation) -> _Value:
    failing = [state for state in ev.workers.values() if not state.ok]
    if failing:
        return "False", failing[0].reason, "; ".join(s.message for s in failing)
    return "True", AVAILABLE, f"{len(ev.workers)} worker(s) available"


def _autoscaling(ev: Evaluation) -> _Value:
    if not ev.keda_installed:
        return "False", KEDA_NOT_INSTALLED, "the keda.sh/v1alpha1 API is not served: install KEDA"
    bad = [s.message for s in ev.scaled_objects.values() if s.ok is False]
    if bad:
        return "False", SCALED_OBJECT_NOT_READY, "; ".join(bad)
    if any(s.ok is None for s in ev.scaled_objects.values()):
        return "True", SCALED_OBJECTS_APPLIED, "ScaledObjects applied; KEDA has not reported on them yet"
    return "True", SCALED_OBJECTS_READY, f"{len(ev.scaled_objects)} ScaledObject(s) ready"


def _degraded(ev: Evaluation) -> _Value:
    problems = list(ev.problems)
    if not ev.keda_installed:
        problems.append(Problem(KEDA_NOT_INSTALLED, "KEDA CRDs are not installed; workers are not autoscaled"))
    for state in (*ev.workers.values(), ev.api):
        if state.reason == PROGRESS_DEADLINE_EXCEEDED:
            problems.append(Problem(state.reason, state.message))
    if problems:
        return "True", problems[0].reason, "; ".join(p.message for p in problems)
    return "False", AS_EXPECTED, "no problem observed"


def _condition(type_: str, value: _Value, generation: int, previous: list[Condition], now: str) -> Condition:
    status, reason, message = value
    old = find(previous, type_)
    since = old.last_transition_time if old and old.status == status and old.last_transition_time else now
    return Condition(
        type=type_,
        status=status,
        reason=reason,
        message=message,
        last_transition_time=since,
        observed_generation=generation,
    )


def build_conditions(ev: Evaluation, generation: int, previous: list[Condition], now: str) -> list[Condition]:
    """Build all five conditions; Ready is derived from the other four.

    Parameters
    ----------
    ev
        The reconcile's children, judged once (:func:`evaluate`).
    generation
        ``metadata.generation`` the observation belongs to.
    previous
        The conditions currently in status (keeps ``lastTransitionTime`` of unchanged ones).
    now
        Current time, RFC 3339 (passed in to keep this function pure).

    Returns
    -------
    list of Condition
        Conditions in :data:`CONDITION_TYPES` order.
    """
    parts = {
        API_READY: _api(ev),
        WORKERS_READY: _workers(ev),
        AUTOSCALING_READY: _autoscaling(ev),
        DEGRADED: _degraded(ev),
    }
    ready: _Value = ("True", PIPELINE_READY, "API, workers and autoscaling are ready")
    for type_ in (DEGRADED, API_READY, WORKERS_READY, AUTOSCALING_READY):
        status, reason, message = parts[type_]
        if (status == "True") == (type_ == DEGRADED):
            ready = ("False", reason, f"{type_}: {message}")
            break
    parts[READY] = ready
    return [_condition(t, parts[t], generation, previous, now) for t in CONDITION_TYPES]


def invalid_spec(message: str, generation: int, previous: list[Condition], now: str) -> list[Condition]:
    """Conditions for a spec the operator cannot parse: Ready False, Degraded True (InvalidSpec)."""
    out = []
    for type_ in CONDITION_TYPES:
        value: _Value
        if type_ == DEGRADED:
            value = ("True", INVALID_SPEC, message)
        elif type_ == READY:
            value = ("False", INVALID_SPEC, message)
        else:
            old = find(previous, type_)
            value = (old.status, old.reason, old.message) if old else ("Unknown", INVALID_SPEC, "")
        out.append(_condition(type_, value, generation, previous, now))
    return out


def transitions(old: list[Condition], new: list[Condition]) -> list[Condition]:
    """Conditions of ``new`` whose status differs from ``old`` (to post as Events).

    Parameters
    ----------
    old
        Conditions before this reconcile.
    new
        Conditions after it.

    Returns
    -------
    list of Condition
        The changed Ready and Degraded conditions (a first Ready that is not True is skipped).
    """
    out = []
    for cond in new:
        if cond.type not in (READY, DEGRADED):
            continue
        before = find(old, cond.type)
        if before is None and cond.type == READY and cond.status != "True":
            continue  # a new pipeline is not ready yet: not news
        if before is None or before.status != cond.status:
            out.append(cond)
    return out
