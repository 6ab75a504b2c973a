"""Status conditions of a DetectionPipeline, derived from what the operator observed."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

__all__ = [
    "READY",
    "API_READY",
    "WORKERS_READY",
    "AUTOSCALING_READY",
    "DEGRADED",
    "CONDITION_TYPES",
    "Observation",
    "Problem",
    "build_conditions",
    "deployment_state",
    "find",
    "is_ready",
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
SCALED_OBJECTS_READY = "ScaledObjectsReady"
SCALED_OBJECTS_APPLIED = "ScaledObjectsApplied"
SCALED_OBJECT_NOT_READY = "ScaledObjectNotReady"
KEDA_NOT_INSTALLED = "KedaNotInstalled"
SECRET_NOT_FOUND = "SecretNotFound"
APPLY_FAILED = "ApplyFailed"
FORBIDDEN = "Forbidden"
INVALID_SPEC = "InvalidSpec"
AS_EXPECTED = "AsExpected"


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


def find(conditions: list[dict[str, Any]], type_: str) -> dict[str, Any] | None:
    """The condition of ``type_`` in ``conditions``, or None."""
    return next((c for c in conditions if c.get("type") == type_), None)


def is_ready(conditions: list[dict[str, Any]]) -> bool:
    """Whether the Ready condition is True."""
    ready = find(conditions, READY)
    return bool(ready and ready.get("status") == "True")


def deployment_state(deployment: dict[str, Any] | None, what: str) -> tuple[bool, str, str]:
    """Whether a Deployment has rolled out and all its pods are ready.

    Parameters
    ----------
    deployment
        The live Deployment, or None.
    what
        How to name it in messages.

    Returns
    -------
    tuple
        ``(ok, reason, message)``.
    """
    if deployment is None:
        return False, NOT_FOUND, f"{what} does not exist yet"
    spec = deployment.get("spec") or {}
    status = deployment.get("status") or {}
    generation = (deployment.get("metadata") or {}).get("generation", 0)
    for cond in status.get("conditions") or []:
        if cond.get("type") == "Progressing" and cond.get("reason") == "ProgressDeadlineExceeded":
            return False, PROGRESS_DEADLINE_EXCEEDED, f"{what}: {cond.get('message', '')}".strip()
    desired = spec.get("replicas", 1)
    updated = status.get("updatedReplicas", 0)
    total = status.get("replicas", 0)
    ready = status.get("readyReplicas", 0)
    if status.get("observedGeneration", 0) < generation or updated < desired or total > updated:
        return False, ROLLOUT_IN_PROGRESS, f"{what}: {updated}/{desired} pods updated, {total} total"
    if ready < desired:
        return False, PODS_NOT_READY, f"{what}: {ready}/{desired} pods ready"
    return True, AVAILABLE, f"{what}: {ready}/{desired} pods ready"


def _scaled_object_state(name: str, so: dict[str, Any] | None) -> tuple[bool | None, str]:
    if so is None:
        return False, f"ScaledObject of worker {name} does not exist yet"
    for cond in (so.get("status") or {}).get("conditions") or []:
        if cond.get("type") == "Ready" and cond.get("status") in ("True", "False"):
            ok = cond["status"] == "True"
            return ok, f"worker {name}: {cond.get('message') or cond.get('reason') or ''}".strip()
    return None, f"worker {name}: KEDA has not reported yet"


def _api(obs: Observation) -> tuple[str, str, str]:
    ok, reason, message = deployment_state(obs.api, "API Deployment")
    return ("True" if ok else "False"), reason, message


def _workers(obs: Observation) -> tuple[str, str, str]:
    failing = []
    for name in sorted(obs.workers):
        ok, reason, message = deployment_state(obs.workers[name], f"worker {name}")
        if not ok:
            failing.append((reason, message))
    if failing:
        return "False", failing[0][0], "; ".join(m for _, m in failing)
    return "True", AVAILABLE, f"{len(obs.workers)} worker(s) available"


def _autoscaling(obs: Observation) -> tuple[str, str, str]:
    if not obs.keda_installed:
        return "False", KEDA_NOT_INSTALLED, "the keda.sh/v1alpha1 API is not served: install KEDA"
    states = {name: _scaled_object_state(name, obs.scaled_objects.get(name)) for name in sorted(obs.workers)}
    bad = [m for ok, m in states.values() if ok is False]
    if bad:
        return "False", SCALED_OBJECT_NOT_READY, "; ".join(bad)
    if any(ok is None for ok, _ in states.values()):
        return "True", SCALED_OBJECTS_APPLIED, "ScaledObjects applied; KEDA has not reported on them yet"
    return "True", SCALED_OBJECTS_READY, f"{len(states)} ScaledObject(s) ready"


def _degraded(obs: Observation) -> tuple[str, str, str]:
    problems = list(obs.problems)
    if not obs.keda_installed:
        problems.append(Problem(KEDA_NOT_INSTALLED, "KEDA CRDs are not installed; workers are not autoscaled"))
    for name in sorted(obs.workers):
        ok, reason, message = deployment_state(obs.workers[name], f"worker {name}")
        if reason == PROGRESS_DEADLINE_EXCEEDED:
            problems.append(Problem(reason, message))
    ok, reason, message = deployment_state(obs.api, "API Deployment")
    if reason == PROGRESS_DEADLINE_EXCEEDED:
        problems.append(Problem(reason, message))
    if problems:
        return "True", problems[0].reason, "; ".join(p.message for p in problems)
    return "False", AS_EXPECTED, "no problem observed"


def _condition(
    type_: str,
    value: tuple[str, str, str],
    generation: int,
    previous: list[dict[str, Any]],
    now: str,
) -> dict[str, Any]:
    status, reason, message = value
    old = find(previous, type_)
    since = old["lastTransitionTime"] if old and old.get("status") == status and old.get("lastTransitionTime") else now
    return {
        "type": type_,
        "status": status,
        "reason": reason,
        "message": message,
        "lastTransitionTime": since,
        "observedGeneration": generation,
    }


def build_conditions(
    obs: Observation, generation: int, previous: list[dict[str, Any]], now: str
) -> list[dict[str, Any]]:
    """Build all five conditions; Ready is derived from the other four.

    Parameters
    ----------
    obs
        What the reconcile observed.
    generation
        ``metadata.generation`` the observation belongs to.
    previous
        The conditions currently in status (keeps ``lastTransitionTime`` of unchanged ones).
    now
        Current time, RFC 3339 (passed in to keep this function pure).

    Returns
    -------
    list of dict
        Conditions in :data:`CONDITION_TYPES` order.
    """
    parts = {
        API_READY: _api(obs),
        WORKERS_READY: _workers(obs),
        AUTOSCALING_READY: _autoscaling(obs),
        DEGRADED: _degraded(obs),
    }
    ready: tuple[str, str, str] = ("True", PIPELINE_READY, "API, workers and autoscaling are ready")
    for type_ in (DEGRADED, API_READY, WORKERS_READY, AUTOSCALING_READY):
        status, reason, message = parts[type_]
        if (status == "True") == (type_ == DEGRADED):
            ready = ("False", reason, f"{type_}: {message}")
            break
    parts[READY] = ready
    return [_condition(t, parts[t], generation, previous, now) for t in CONDITION_TYPES]


def invalid_spec(message: str, generation: int, previous: list[dict[str, Any]], now: str) -> list[dict[str, Any]]:
    """Conditions for a spec the operator cannot parse: Ready False, Degraded True (InvalidSpec)."""
    out = []
    for type_ in CONDITION_TYPES:
        if type_ == DEGRADED:
            value = ("True", INVALID_SPEC, message)
        elif type_ == READY:
            value = ("False", INVALID_SPEC, message)
        else:
            old = find(previous, type_)
            value = (old["status"], old["reason"], old.get("message", "")) if old else ("Unknown", INVALID_SPEC, "")
        out.append(_condition(type_, value, generation, previous, now))
    return out


def transitions(old: list[dict[str, Any]], new: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Conditions of ``new`` whose status differs from ``old`` (to post as Events).

    Parameters
    ----------
    old
        Conditions before this reconcile.
    new
        Conditions after it.

    Returns
    -------
    list of dict
        The changed Ready and Degraded conditions (a first Ready that is not True is skipped).
    """
    out = []
    for cond in new:
        if cond["type"] not in (READY, DEGRADED):
            continue
        before = find(old, cond["type"])
        if before is None and cond["type"] == READY and cond["status"] != "True":
            continue  # a new pipeline is not ready yet: not news
        if before is None or before.get("status") != cond["status"]:
            out.append(cond)
    return out
