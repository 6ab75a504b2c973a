"""Every error response has one shape: {"error": {code, message, details}, "request_id"}."""

from __future__ import annotations

import logging

import redis

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from detectflow.blobs.base import BlobStoreUnavailable
from detectflow.jobs.errors import HTTP_STATUS, DetectflowError, ErrorCode
from detectflow.logs import request_id_var

__all__ = ["install_error_handlers", "error_response"]

log = logging.getLogger("detectflow.api")


def error_response(err: DetectflowError) -> JSONResponse:
    return JSONResponse(
        {
            "error": {"code": err.code.value, "message": err.message, "details": err.details},
            "request_id": request_id_var.get(),
        },
        status_code=err.http_status,
        headers=err.headers,
    )


def _from_http(exc: StarletteHTTPException) -> DetectflowError:
    code = {404: ErrorCode.not_found, 405: ErrorCode.method_not_allowed, 413: ErrorCode.payload_too_large}.get(
        exc.status_code, ErrorCode.validation_error
    )
    err = DetectflowError(code, str(exc.detail), headers=dict(exc.headers or {}))
    return err


def install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(DetectflowError)
    async def _detectflow(request: Request, exc: DetectflowError) -> JSONResponse:
        return error_response(exc)

    @app.exception_handler(RequestValidationError)
    async def _validation(request: Request, exc: RequestValidationError) -> JSONResponse:
        problems = [
            {"loc": [str(p) for p in e.get("loc", ())], "msg": e.get("msg", ""), "type": e.get("type", "")}
            for e in exc.errors()
        ]
        first = problems[0] if problems else {"loc": [], "msg": "invalid request"}
        message = f"{'.'.join(first['loc'][1:]) or 'request'}: {first['msg']}"
        return error_response(DetectflowError(ErrorCode.validation_error, message, {"errors": problems}))

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        err = _from_http(exc)
        resp = error_response(err)
        # FastAPI's only 400 is a body it could not parse (JSON that is not UTF-8, broken multipart): a
        # validation_error like any other malformed body, so 422 as its code says, not an undeclared 400
        known = exc.status_code in HTTP_STATUS.values() and exc.status_code != 400
        resp.status_code = exc.status_code if known else err.http_status
        return resp

    @app.exception_handler(redis.ConnectionError)
    @app.exception_handler(redis.TimeoutError)
    async def _redis_down(request: Request, exc: Exception) -> JSONResponse:
        log.error("redis unavailable: %s", exc)
        err = DetectflowError(
            ErrorCode.service_unavailable, "The job store is unreachable; retry shortly.", headers={"Retry-After": "5"}
        )
        return error_response(err)

    @app.exception_handler(redis.exceptions.ResponseError)
    async def _redis_refused(request: Request, exc: Exception) -> JSONResponse:
        # a script refused for memory reports OOM inside a plain ResponseError
        if "OOM command not allowed" in str(exc):
            return await _redis_full(request, exc)
        return await _unexpected(request, exc)

    @app.exception_handler(redis.exceptions.OutOfMemoryError)
    async def _redis_full(request: Request, exc: Exception) -> JSONResponse:
        log.error("redis is out of memory: %s", exc)
        err = DetectflowError(
            ErrorCode.service_unavailable,
            "The job store is full; retry later.",
            {"reason": "redis_out_of_memory"},
            headers={"Retry-After": "30"},
        )
        return error_response(err)

    @app.exception_handler(BlobStoreUnavailable)
    async def _blobs_down(request: Request, exc: Exception) -> JSONResponse:
        log.error("blob store unavailable: %s", exc)
        err = DetectflowError(
            ErrorCode.service_unavailable,
            "The blob store is unreachable; retry shortly.",
            {"reason": "blob_store_unavailable"},
            headers={"Retry-After": "5"},
        )
        return error_response(err)

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
        log.exception("unhandled error")
        return error_response(DetectflowError(ErrorCode.internal_error, "Internal server error."))
