"""Thin kopf handlers: parse, render, apply, observe, write status."""

from __future__ import annotations

import datetime
import logging
from typing import Any

import kopf
import pydantic
import urllib3

from detectflow.operator import apply, conditions, metrics, queues
from detectflow.operator.crd import GROUP, PLURAL, VERSION, Condition, DetectionPipeline
from detectflow.operator.render import queue_keys, redis_prefix, redis_target, render_all
from detectflow.operator.status import build_status

__all__ = ["DEFAULT_RESYNC_SECONDS", "configure", "reconcile", "register"]

#: How often every pipeline is re-applied and its status refreshed (seconds); repairs
#: deleted or hand-edited children and picks up readiness and queue depth.
DEFAULT_RESYNC_SECONDS = 15.0

_RESOURCE = (GROUP, VERSION, PLURAL)


def _now() -> str:
    return datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _parse(body: kopf.Body, status: kopf.Status, patch: kopf.Patch) -> DetectionPipeline:
    try:
        return DetectionPipeline.from_body({"metadata": dict(body.metadata), "spec": dict(body.spec)})
    except pydantic.ValidationError as exc:
        generation = body.metadata.get("generation") or 0
        previous = conditions.parse_conditions(status.get("conditions"))
        new = conditions.invalid_spec(str(exc), generation, previous, _now())
        patch.status["conditions"] = [c.model_dump(by_alias=True, mode="json") for c in new]
        raise kopf.PermanentError(f"invalid spec: {exc}") from exc


def _post_events(body: kopf.Body, old: list[Condition], new: list[Condition]) -> None:
    for cond in conditions.transitions(old, new):
        healthy = (cond.status == "True") == (cond.type == conditions.READY)
        post = kopf.info if healthy else kopf.warn
        post(body, reason=f"{cond.type}{cond.status}", message=f"{cond.reason}: {cond.message}")


def reconcile(
    body: kopf.Body, status: kopf.Status, patch: kopf.Patch, memo: kopf.Memo, logger: logging.Logger, **_: Any
) -> None:
    """Create, update, resume and resync: apply the desired children and refresh status."""
    pipeline = _parse(body, status, patch)
    try:
        secrets = apply.check_secrets(memo.client, pipeline)
        if secrets.blocked:
            result = apply.ApplyResult(keda_installed=memo.client.is_served(apply.KEDA_GROUP_VERSION))
        else:
            result = apply.apply_all(memo.client, pipeline, render_all(pipeline))
        result.problems[:0] = secrets.problems
        obs = apply.observe(memo.client, pipeline, result)
        password = secrets.redis_password
    except (apply.ApiError, urllib3.exceptions.HTTPError) as exc:
        raise kopf.TemporaryError(f"API server: {exc}", delay=10) from exc
    if result.pruned:
        logger.info("pruned %s", ", ".join(result.pruned))
    prefix = redis_prefix(pipeline)
    keys = {w.name: tuple(queue_keys(prefix, w.task.value).values()) for w in pipeline.spec.workers}
    depths = queues.read_depths(redis_target(pipeline.spec.redis), password, keys)
    previous = conditions.parse_conditions(status.get("conditions"))
    new = build_status(pipeline, obs, depths, previous, _now())
    _post_events(body, previous, new.conditions)
    metrics.observe_conditions(body.metadata.namespace, body.metadata.name, new.conditions)
    patch.status.update(new.model_dump(by_alias=True, mode="json"))


def configure(settings: kopf.OperatorSettings, memo: kopf.Memo, **_: Any) -> None:
    """Startup: one API client, annotation-based kopf state, no peering, no cluster scanning."""
    memo.client = apply.make_client()
    settings.persistence.progress_storage = kopf.AnnotationsProgressStorage(prefix=GROUP)
    settings.persistence.diffbase_storage = kopf.AnnotationsDiffBaseStorage(
        prefix=GROUP, key="last-handled-configuration"
    )
    settings.persistence.finalizer = f"{GROUP}/operator"
    settings.peering.standalone = True
    settings.scanning.disabled = True
    settings.watching.server_timeout = 300
    settings.watching.client_timeout = 330
    settings.networking.request_timeout = 30
    settings.batching.error_delays = (1, 2, 5, 10, 20, 30)
    # A deleted pipeline whose resync was running re-checks its exit every second, not every 60 s
    # (kopf's default): the finalizer goes as soon as the reconcile returns.
    settings.background.cancellation_polling = 1


def forget(type: str, namespace: str | None, name: str | None, **_: Any) -> None:
    """Any event: a deleted pipeline's metrics go with it (no finalizer needed)."""
    if type == "DELETED" and namespace and name:
        metrics.forget_pipeline(namespace, name)


def register(
    registry: kopf.OperatorRegistry,
    resync_seconds: float = DEFAULT_RESYNC_SECONDS,
    metrics_port: int = 0,
    metrics_host: str = "0.0.0.0",
) -> None:
    """Attach the handlers to ``registry`` (the resync interval and metrics port are only known at run time)."""
    # In-cluster ServiceAccount, else KUBECONFIG: the same source as apply.make_client().
    kopf.on.login(registry=registry)(kopf.login_via_client)
    kopf.on.startup(registry=registry)(configure)
    if metrics_port:
        kopf.on.startup(registry=registry, id="metrics")(lambda **_: metrics.serve(metrics_host, metrics_port))
    for decorator in (kopf.on.create, kopf.on.update, kopf.on.resume):
        decorator(*_RESOURCE, registry=registry, id="reconcile", backoff=10)(metrics.instrumented(reconcile, "change"))
    kopf.timer(*_RESOURCE, registry=registry, id="resync", interval=resync_seconds, initial_delay=resync_seconds)(
        metrics.instrumented(reconcile, "resync")
    )
    kopf.on.event(*_RESOURCE, registry=registry, id="metrics-forget")(forget)
