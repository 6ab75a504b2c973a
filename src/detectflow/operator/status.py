"""The DetectionPipeline status block, built from one reconcile's observation."""

from __future__ import annotations

from typing import Any

from detectflow.operator.conditions import Observation, build_conditions, deployment_state
from detectflow.operator.crd import DetectionPipeline
from detectflow.operator.render import api_endpoint

__all__ = ["build_status"]


def _worker_status(name: str, task: str, deployment: dict[str, Any] | None, depth: int | None) -> dict[str, Any]:
    spec = (deployment or {}).get("spec") or {}
    status = (deployment or {}).get("status") or {}
    out: dict[str, Any] = {
        "name": name,
        "task": task,
        "desiredReplicas": spec.get("replicas", 0) if deployment else 0,
        "readyReplicas": status.get("readyReplicas", 0),
    }
    if depth is not None:
        out["queueDepth"] = depth
    return out


def build_status(
    pipeline: DetectionPipeline,
    obs: Observation,
    depths: dict[str, int | None],
    previous: dict[str, Any],
    now: str,
) -> dict[str, Any]:
    """Build ``status`` (camelCase) for one reconcile.

    Parameters
    ----------
    pipeline
        The parsed pipeline.
    obs
        Live children and problems.
    depths
        Worker name -> unfinished jobs (None when Redis was unreachable).
    previous
        The current ``status`` (for condition transition times).
    now
        Current time, RFC 3339.

    Returns
    -------
    dict
        The new status; ``queueDepth`` is None when no depth could be read.
    """
    workers = [
        _worker_status(w.name, w.task.value, obs.workers.get(w.name), depths.get(w.name))
        for w in sorted(pipeline.spec.workers, key=lambda w: w.name)
    ]
    ready = sum(1 for w in pipeline.spec.workers if deployment_state(obs.workers.get(w.name), w.name)[0])
    known = [d for d in depths.values() if d is not None]
    return {
        "observedGeneration": pipeline.generation,
        "conditions": build_conditions(obs, pipeline.generation, previous.get("conditions") or [], now),
        "workers": workers,
        "readyWorkers": f"{ready}/{len(pipeline.spec.workers)}",
        "queueDepth": sum(known) if known else None,
        "endpoint": api_endpoint(pipeline),
    }
