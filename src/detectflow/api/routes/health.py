"""/healthz, /readyz and /metrics."""

from __future__ import annotations

from anyio import to_thread
from fastapi import APIRouter, Request, Response

from detectflow.api.deps import KeyStoreDep, SettingsDep
from detectflow.api.openapi import headers
from detectflow.api.schemas import Health, Readiness, WorkerSeen
from detectflow.auth.records import Scope
from detectflow.auth.tokens import parse_bearer
from detectflow.config import Pool, Settings
from detectflow.keys import detect_queue

router = APIRouter(tags=["health"])


@router.get("/healthz", response_model=Health, responses={200: {"headers": headers()}}, summary="The process is up")
def healthz() -> Health:
    return Health()


@router.get(
    "/readyz",
    response_model=Readiness,
    responses={
        200: {"description": "Ready. Workers and queue depths are shown to an admin key only.", "headers": headers()},
        503: {"model": Readiness, "description": "Not ready: Redis unreachable, or no worker where one is required.",
              "headers": headers()},
    },  # fmt: skip
    summary="Redis is reachable; with an admin key, which workers were seen recently",
)
async def readyz(request: Request, response: Response, settings: SettingsDep, keys: KeyStoreDep) -> Readiness:
    readiness = await to_thread.run_sync(_readiness, request.app.state.observer, settings)
    response.status_code = 200 if readiness.status == "ok" else 503
    if readiness.status == "unavailable" or await _is_admin(request, settings, keys):
        return readiness
    return Readiness(status=readiness.status, redis=readiness.redis)  # no hosts, pids or models


async def _is_admin(request: Request, settings: Settings, keys) -> bool:
    if settings.auth == "disabled":
        return True
    key = parse_bearer(request.headers.get("authorization"))
    if key is None:
        return False
    verdict = await keys.authenticate(key)
    return verdict.key is not None and verdict.key.principal().may(Scope.admin)


def _readiness(store, settings: Settings) -> Readiness:
    try:
        store.client.ping()
    except Exception as exc:
        return Readiness(status="unavailable", redis=f"unreachable: {type(exc).__name__}")
    workers = {t.value: store.live_workers(t.value, settings.api_worker_stale_seconds) for t in Pool}
    ready = not settings.api_require_workers or all(workers.values())
    return Readiness(
        status="ok" if ready else "no_workers",
        redis="ok",
        workers={t: [WorkerSeen(id=w["id"], model=w.get("model"), provider=w.get("provider")) for w in ws]
                 for t, ws in workers.items()},  # fmt: skip
        queue_depth={t.value: store.queue_depth(detect_queue(t.value)) for t in Pool},
    )
