"""/healthz, /readyz and /metrics."""

from __future__ import annotations

from fastapi import APIRouter, Request, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from detectflow.api.deps import SettingsDep
from detectflow.api.openapi import headers
from detectflow.api.schemas import Health, Readiness, WorkerSeen
from detectflow.config import Task
from detectflow.jobs.kinds import kind_of

router = APIRouter(tags=["health"])


@router.get("/healthz", response_model=Health, responses={200: {"headers": headers()}}, summary="The process is up")
def healthz() -> Health:
    return Health()


@router.get(
    "/readyz",
    response_model=Readiness,
    responses={
        200: {"description": "Ready.", "headers": headers()},
        503: {"model": Readiness, "description": "Not ready: Redis unreachable, or no worker where one is required.",
              "headers": headers()},
    },  # fmt: skip
    summary="Redis is reachable; which workers were seen recently",
)
def readyz(request: Request, response: Response, settings: SettingsDep) -> Readiness:
    store = request.app.state.observer
    try:
        store.client.ping()
    except Exception as exc:
        response.status_code = 503
        return Readiness(status="unavailable", redis=f"unreachable: {type(exc).__name__}")
    workers = {t.value: store.live_workers(t.value, settings.api_worker_stale_seconds) for t in Task}
    ready = not settings.api_require_workers or all(workers.values())
    response.status_code = 200 if ready else 503
    return Readiness(
        status="ok" if ready else "no_workers",
        redis="ok",
        workers={t: [WorkerSeen(id=w["id"], model=w.get("model"), provider=w.get("provider")) for w in ws]
                 for t, ws in workers.items()},  # fmt: skip
        queue_depth={t.value: store.queue_depth(kind_of(t).queue) for t in Task},
    )


@router.get(
    "/metrics",
    response_class=Response,
    responses={200: {"content": {"text/plain": {"schema": {"type": "string"}}}, "headers": headers(),
                     "description": "Prometheus text exposition format."}},  # fmt: skip
    summary="Prometheus metrics",
)
def metrics(request: Request) -> Response:
    return Response(generate_latest(request.app.state.metrics.registry), media_type=CONTENT_TYPE_LATEST)
