"""The API's access log: what a line holds and what it never does."""

from __future__ import annotations

import asyncio
import json
import logging

from detectflow.api.access import AccessLogMiddleware, access_fields
from detectflow.logs import JsonFormatter


class _Route:
    path = "/v1/jobs/{job_id}"


def test_access_fields_leave_out_the_query_string_and_headers():
    scope = {"type": "http", "method": "GET", "path": "/v1/jobs/abc", "query_string": b"token=s3cret",
             "headers": [(b"authorization", b"Bearer dfk_secret")], "client": ("10.0.0.7", 5123), "route": _Route()}  # fmt: skip
    fields = access_fields(scope, 200, 0.01234)
    assert fields == {"method": "GET", "path": "/v1/jobs/abc", "route": "/v1/jobs/{job_id}", "status": 200,
                      "duration_ms": 12.3, "client": "10.0.0.7"}  # fmt: skip
    assert "s3cret" not in json.dumps(fields) and "dfk_" not in json.dumps(fields)


def test_access_log_middleware_logs_one_json_line_per_request(caplog):
    async def app(scope, receive, send):
        await send({"type": "http.response.start", "status": 404, "headers": []})
        await send({"type": "http.response.body", "body": b""})

    async def noop(message):
        return None

    scope = {"type": "http", "method": "POST", "path": "/v1/jobs", "query_string": b"key=dfk_x", "client": None,
             "headers": [(b"authorization", b"Bearer dfk_secret")]}  # fmt: skip
    with caplog.at_level(logging.INFO, logger="detectflow.access"):
        asyncio.run(AccessLogMiddleware(app)(scope, noop, noop))
    (record,) = caplog.records
    line = json.loads(JsonFormatter().format(record))
    assert (line["method"], line["path"], line["status"], line["logger"]) == ("POST", "/v1/jobs", 404, "detectflow.access")
    assert "dfk_" not in JsonFormatter().format(record)
