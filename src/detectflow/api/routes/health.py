"""/healthz, /readyz and /metrics."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from detectflow.api.deps import SettingsDep
from detectflow.config import Task

router = APIRouter(tags=["health"])


@router.get("/healthz", summary="The process is up")
def healthz() -> dict:
    return {"status": "ok"}


@router.get("/readyz", summary="Redis is reachable; which workers were seen recently")
def readyz(request: Request, settings: SettingsDep) -> JSONResponse:
    store = request.app.state.observer
    try:
        store.client.ping()
    except Exception as exc:
        return JSONResponse({"status": "unavailable", "redis": f"unreachable: {type(exc).__name__}"}, status_code=503)
    workers = {t.value: store.live_workers(t.value, settings.api_worker_stale_seconds) for t in Task}
    ready = not settings.api_require_workers or all(workers.values())
    return JSONResponse(
        {
            "status": "ok" if ready else "no_workers",
            "redis": "ok",
            "workers": {
                t: [{"id": w["id"], "model": w.get("model"), "provider": w.get("provider")} for w in ws]
                for t, ws in workers.items()
            },
            "queue_depth": {t.value: store.queue_depth(t.queue_name) for t in Task},
        },
        status_code=200 if ready else 503,
    )


@router.get("/metrics", summary="Prometheus metrics")
def metrics(request: Request) -> Response:
    return Response(generate_latest(request.app.state.metrics.registry), media_type=CONTENT_TYPE_LATEST)
