"""DETECTFLOW_API_ACCESS_LOG against the real app and Redis: one line per request, never the key or the query."""

from __future__ import annotations

import logging

from tests.integration.conftest import submit
from tests.support.images import image_bytes
from tests.support.processes import TEST_ADMIN_KEY


def test_access_log_is_off_by_default(client, caplog):
    with caplog.at_level(logging.INFO, logger="detectflow.access"):
        assert client.get("/healthz").status_code == 200
    assert not [r for r in caplog.records if r.name == "detectflow.access"]


def test_access_log_records_requests_without_secrets(make_client, caplog):
    # Given the access log on
    client = make_client(api_access_log=True)
    with caplog.at_level(logging.INFO, logger="detectflow.access"):
        # When a job is submitted and read with a query string
        job = submit(client, image_bytes("astronaut")).json()
        client.get(f"/v1/jobs/{job['id']}", params={"wait": "0", "secret": "hunter2"})
    # Then each request has one line with its route, status and request id; no key, no query string
    lines = [r for r in caplog.records if r.name == "detectflow.access"]
    assert [(r.fields["method"], r.fields["route"], r.fields["status"]) for r in lines] == [
        ("POST", "/v1/jobs", 202), ("GET", "/v1/jobs/{job_id}", 200)]  # fmt: skip
    assert all(r.request_id for r in lines)
    text = "\n".join(f"{r.getMessage()} {r.fields}" for r in lines)
    assert TEST_ADMIN_KEY not in text and "hunter2" not in text
