"""The seeds' REST API: POST stores the image in Redis and sends a Celery task; GET reads Celery's result.

Run with ``uvicorn bench.celery_stack.api:app``.
"""

from __future__ import annotations

import uuid
from typing import Annotated

import redis
from celery.result import AsyncResult
from fastapi import FastAPI, File, Form, HTTPException, UploadFile
from fastapi.responses import JSONResponse

from bench.celery_stack.worker import DEFAULT_TTL_SECONDS, REDIS_URL, celery_app, detect_faces, image_key

__all__ = ["app"]

#: Celery task states as detectflow names job states.
_STATUS = {"PENDING": "queued", "RECEIVED": "queued", "RETRY": "queued", "STARTED": "running",
           "SUCCESS": "succeeded", "FAILURE": "failed", "REVOKED": "cancelled"}

app = FastAPI(title="seeds' stack (FastAPI + Celery + Redis)")
store = redis.Redis.from_url(REDIS_URL)


@app.get("/healthz")
def healthz() -> dict:
    return {"status": "ok"}


@app.post("/v1/jobs", status_code=202)
async def create_job(file: Annotated[UploadFile, File()], task: Annotated[str, Form()]) -> JSONResponse:
    if task != "face":
        raise HTTPException(422, f"unknown task {task!r}")
    data = await file.read()
    if not data:
        raise HTTPException(400, "empty file")
    job_id = uuid.uuid4().hex
    store.set(image_key(job_id), data, ex=DEFAULT_TTL_SECONDS)
    detect_faces.apply_async((job_id,), task_id=job_id)
    return JSONResponse({"id": job_id, "status": "queued"}, status_code=202)


@app.get("/v1/jobs/{job_id}")
async def get_job(job_id: str) -> JSONResponse:
    res = AsyncResult(job_id, app=celery_app)
    status = _STATUS.get(res.state, "queued")
    if res.state == "PENDING" and not store.exists(image_key(job_id)):
        raise HTTPException(404, "no such job")
    body: dict = {"id": job_id, "status": status, "result": None, "error": None}
    if status == "succeeded":
        body["result"] = res.result
    elif status == "failed":
        body["error"] = {"message": str(res.result)}
    return JSONResponse(body)
