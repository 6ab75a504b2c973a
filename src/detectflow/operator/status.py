"""The DetectionPipeline status block, built from one reconcile's observation."""

from __future__ import annotations

from typing import Any

from detectflow.operator.conditions import Observation, build_conditions, evaluate
from detectflow.operator.crd import Condition, DetectionPipeline, DetectionPipelineStatus, WorkerStatus
from detectflow.operator.render import api_endpoint

__all__ = ["build_status"]


def _worker_status(name: str, task: str, deployment: dict[str, Any] | None, depth: int | None) -> WorkerStatus:
    spec = (deployment or {}).get("spec") or {}
    status = (deployment or {}).get("status") or {}
    return WorkerStatus(
        name=name,
        task=task,
        desired_replicas=spec.get("replicas", 0) if deployment else 0,
        ready_replicas=status.get("readyReplicas", 0),
        queue_depth=depth,
    )


def build_status(
    pipeline: DetectionPipeline,
    obs: Observation,
    depths: dict[str, int | None],
    previous: list[Condition],
    now: str,
) -> DetectionPipelineStatus:
    """Build ``status`` for one reconcile, judging each child once (:func:`~detectflow.operator.conditions.evaluate`).

    Parameters
    ----------
    pipeline
        The parsed pipeline.
    obs
        Live children and problems.
    depths
        Worker name -> unfinished jobs (None when Redis was unreachable).
    previous
        The conditions currently in status (for transition times).
    now
        Current time, RFC 3339.

    Returns
    -------
    DetectionPipelineStatus
        The new status; ``queue_depth`` is None when no depth could be read. Write it with
        ``model_dump(by_alias=True, mode="json")``: a None total is then a null, which removes
        the old value in the merge patch, and a worker without a depth has no ``queueDepth``.
    """
    ev = evaluate(obs)
    workers = [
        _worker_status(w.name, w.task.value, obs.workers.get(w.name), depths.get(w.name))
        for w in sorted(pipeline.spec.workers, key=lambda w: w.name)
    ]
    ready = sum(1 for w in pipeline.spec.workers if (state := ev.workers.get(w.name)) is not None and state.ok)
    known = [d for d in depths.values() if d is not None]
    return DetectionPipelineStatus(
        observed_generation=pipeline.generation,
        conditions=build_conditions(ev, pipeline.generation, previous, now),
        workers=workers,
        ready_workers=f"{ready}/{len(pipeline.spec.workers)}",
        queue_depth=sum(known) if known else None,
        endpoint=api_endpoint(pipeline),
    )
