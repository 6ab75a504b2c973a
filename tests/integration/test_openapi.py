"""Conformance: every route, called for real on the real stack, answers what /openapi.json declares.

Each answer's status must be declared for its operation, its body must validate against the
declared schema (JSON Schema 2020-12, as OpenAPI 3.1 is), and its declared headers must be sent.
Every declared status but 500 must be reached at least once: nothing is documented that cannot happen.
"""

from __future__ import annotations

import re
import socket

import httpx
import jsonschema
import pytest

from detectflow.api.app import create_app
from tests.integration.conftest import submit, wait_job
from tests.support.images import image_bytes
from tests.support.videos import video_bytes

pytestmark = [pytest.mark.redis, pytest.mark.models]


class Conformance:
    """Checks answers against the document and records which (operation, status) were seen."""

    def __init__(self, doc: dict) -> None:
        self.doc = doc
        self.seen: set[tuple[str, str]] = set()
        self.routes = [
            (method.upper(), re.compile("^" + re.sub(r"\{[^/]+\}", "[^/]+", path) + "$"), op)
            for path, item in doc["paths"].items()
            for method, op in item.items()
        ]

    def declared(self) -> set[tuple[str, str]]:
        return {(op["operationId"], status) for _, _, op in self.routes for status in op["responses"]}

    def check(self, resp: httpx.Response) -> httpx.Response:
        method, path = resp.request.method, resp.request.url.path
        op = next((op for m, rx, op in self.routes if m == method and rx.match(path)), None)
        assert op is not None, f"{method} {path} is not in the document"
        status = str(resp.status_code)
        assert status in op["responses"], f"{op['operationId']} answered {status}, declared {list(op['responses'])}"
        declared = op["responses"][status]
        for header, spec in declared.get("headers", {}).items():
            if spec.get("required", True):
                assert header.lower() in resp.headers, f"{op['operationId']} {status}: header {header} missing"
        content = declared.get("content", {})
        if not content:  # 204
            assert not resp.content, f"{op['operationId']} {status}: a body where none is declared"
            self.seen.add((op["operationId"], status))
            return resp
        media = resp.headers.get("content-type", "").split(";")[0]
        assert media in content, f"{op['operationId']} {status}: {media} not declared ({list(content)})"
        schema = content[media].get("schema")
        if media == "application/json":
            assert schema, f"{op['operationId']} {status}: no schema"
            jsonschema.validate(
                resp.json(), {**schema, "components": self.doc["components"]}, cls=jsonschema.Draft202012Validator
            )
        self.seen.add((op["operationId"], status))
        return resp


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _truncated_png() -> bytes:
    return image_bytes("coffee")[:2000]


def test_every_route_answers_what_the_openapi_document_declares(client, make_client, run_worker, settings):
    doc = client.get("/openapi.json").json()
    c = Conformance(doc)
    ops = {op["operationId"] for _, _, op in c.routes}
    assert ops == {"create_job", "list_jobs", "get_job", "cancel_job", "get_annotated", "get_frames", "healthz",
                   "readyz", "create_key", "list_keys", "revoke_key"}  # fmt: skip
    codes = doc["components"]["schemas"]["ErrorCode"]["enum"]
    assert {"invalid_image", "queue_full", "job_not_found", "service_unavailable"} <= set(codes)

    # A finished job, through a real worker
    run_worker("face")
    done = c.check(submit(client, image_bytes("astronaut"), headers={"Idempotency-Key": "conf-1"}))
    assert done.status_code == 202
    job_id = done.json()["id"]
    wait_job(client, job_id)
    c.check(client.get(f"/v1/jobs/{job_id}", params={"wait": 5}))
    c.check(submit(client, image_bytes("astronaut"), headers={"Idempotency-Key": "conf-1"}))  # 200 replay
    c.check(client.get(f"/v1/jobs/{job_id}/annotated"))  # 200 PNG
    c.check(client.delete(f"/v1/jobs/{job_id}"))  # 409 not cancellable
    c.check(client.get("/v1/jobs", params={"limit": 1}))
    # A finished video job: its frames by page, its annotated WebM
    video = c.check(submit(client, video_bytes("carphone_pristine"), name="c.mp4", max_frames="3")).json()["id"]
    assert wait_job(client, video, timeout=120)["status"] == "succeeded"
    c.check(client.get(f"/v1/jobs/{video}/frames", params={"limit": 2}))  # 200
    c.check(client.get(f"/v1/jobs/{video}/annotated"))  # 200 WebM
    c.check(client.get(f"/v1/jobs/{video}/frames", params={"limit": 0}))  # 422
    c.check(client.get(f"/v1/jobs/{job_id}/frames"))  # 404 not_found: an image job has no frames

    # Requests the API refuses
    c.check(submit(client, _truncated_png()))  # 400
    c.check(submit(client, b"plain text, not an image"))  # 415
    c.check(make_client(api_max_image_pixels=100).post(
        "/v1/jobs", files={"file": ("a.png", image_bytes("astronaut"))}, data={"task": "face"}))  # 413  # fmt: skip
    c.check(client.post("/v1/jobs", files={"file": ("a.png", image_bytes("astronaut"))}))  # 422: no task
    c.check(client.get("/v1/jobs", params={"limit": 0}))  # 422
    c.check(client.get(f"/v1/jobs/{job_id}", params={"wait": 999}))  # 422
    for path in (f"/v1/jobs/{'0' * 32}", f"/v1/jobs/{'0' * 32}/annotated", f"/v1/jobs/{'0' * 32}/frames"):
        c.check(client.get(path))  # 404
    c.check(client.delete(f"/v1/jobs/{'0' * 32}"))  # 404

    # Jobs that stay queued (their task has no worker)
    full = make_client(api_max_queue_depth=1)
    queued = c.check(submit(full, image_bytes("coffee"), task="object")).json()["id"]
    c.check(submit(full, image_bytes("coffee"), task="object"))  # 429
    c.check(full.get(f"/v1/jobs/{queued}/annotated"))  # 409 not finished
    c.check(full.delete(f"/v1/jobs/{queued}"))  # 200 cancelled
    waiting = c.check(submit(client, video_bytes("carphone_pristine"), task="object", name="c.mp4")).json()["id"]
    c.check(client.get(f"/v1/jobs/{waiting}/frames"))  # 409 not finished

    # Keys: create (201), list, revoke (204), a second revoke (404), a bad body (422)
    reader = c.check(client.post("/v1/keys", json={"tenant": "conf", "name": "reader", "scopes": ["jobs:read"]}))
    writer = c.check(client.post("/v1/keys", json={"tenant": "conf", "name": "writer", "scopes": ["jobs:write"]}))
    c.check(client.get("/v1/keys"))
    c.check(client.post("/v1/keys", json={"tenant": "Not A Tenant", "name": "x", "scopes": []}))
    gone = c.check(client.post("/v1/keys", json={"tenant": "conf", "name": "gone", "scopes": ["jobs:read"]})).json()
    c.check(client.delete(f"/v1/keys/{gone['id']}"))
    c.check(client.delete(f"/v1/keys/{gone['id']}"))

    # Every route without a key (401), and with a key lacking the scope (403)
    anonymous = make_client(headers={})
    as_reader = make_client(headers={"Authorization": f"Bearer {reader.json()['key']}"})
    as_writer = make_client(headers={"Authorization": f"Bearer {writer.json()['key']}"})
    calls = {
        "create": lambda cl: submit(cl, image_bytes("coffee")),
        "list": lambda cl: cl.get("/v1/jobs"),
        "get": lambda cl: cl.get(f"/v1/jobs/{job_id}"),
        "cancel": lambda cl: cl.delete(f"/v1/jobs/{job_id}"),
        "annotated": lambda cl: cl.get(f"/v1/jobs/{job_id}/annotated"),
        "frames": lambda cl: cl.get(f"/v1/jobs/{video}/frames"),
        "create_key": lambda cl: cl.post("/v1/keys", json={"tenant": "conf", "name": "n", "scopes": ["jobs:read"]}),
        "list_keys": lambda cl: cl.get("/v1/keys"),
        "revoke_key": lambda cl: cl.delete(f"/v1/keys/{gone['id']}"),
    }
    for name, call in calls.items():
        assert c.check(call(anonymous)).status_code == 401
        lacking = as_reader if name in ("create", "cancel") else as_writer
        assert c.check(call(lacking)).status_code == 403, name

    # A key's rate limit (burst 1): the second submission is refused
    limited = c.check(client.post("/v1/keys", json={"tenant": "conf", "name": "slow", "scopes": ["jobs:write"],
                                                    "rate_limit_per_second": 0.01, "burst": 1})).json()  # fmt: skip
    as_limited = make_client(headers={"Authorization": f"Bearer {limited['key']}"})
    assert c.check(submit(as_limited, image_bytes("coffee"), task="object")).status_code == 202
    assert c.check(submit(as_limited, image_bytes("coffee"), task="object")).status_code == 429
    # A tenant's quota of unfinished jobs
    quota = c.check(client.post("/v1/keys", json={"tenant": "quota", "name": "q", "scopes": ["jobs:write"],
                                                  "max_queued_jobs": 1})).json()  # fmt: skip
    as_quota = make_client(headers={"Authorization": f"Bearer {quota['key']}"})
    assert c.check(submit(as_quota, image_bytes("coffee"), task="object")).status_code == 202
    assert c.check(submit(as_quota, image_bytes("coffee"), task="object")).json()["error"]["code"] == "quota_exceeded"

    # Health, and every route with Redis unreachable (503)
    c.check(client.get("/healthz"))
    c.check(client.get("/readyz"))
    down = make_client(redis_url=f"redis://127.0.0.1:{_closed_port()}/0")
    c.check(down.get("/readyz"))
    c.check(submit(down, image_bytes("coffee")))
    c.check(down.get("/v1/jobs"))
    c.check(down.get(f"/v1/jobs/{job_id}"))
    c.check(down.delete(f"/v1/jobs/{job_id}"))
    c.check(down.get(f"/v1/jobs/{job_id}/annotated"))
    c.check(down.get(f"/v1/jobs/{video}/frames"))
    c.check(down.post("/v1/keys", json={"tenant": "conf", "name": "n", "scopes": ["jobs:read"]}))
    c.check(down.get("/v1/keys"))
    c.check(down.delete(f"/v1/keys/{gone['id']}"))

    missing = {(op, s) for op, s in c.declared() - c.seen if s != "500"}
    assert not missing, f"declared but never answered: {sorted(missing)}"


def test_openapi_declares_ids_headers_examples_and_the_error_enum(client):
    doc = client.get("/openapi.json").json()
    create = doc["paths"]["/v1/jobs"]["post"]
    assert set(create["responses"]["202"]["headers"]) == {
        "X-Request-ID", "Location", "Idempotent-Replayed", "RateLimit-Policy", "RateLimit"}  # fmt: skip
    assert "WWW-Authenticate" in create["responses"]["401"]["headers"]
    assert create["security"] == [{"HTTPBearer": []}]
    assert "Retry-After" in create["responses"]["429"]["headers"]
    assert create["responses"]["429"]["content"]["application/json"]["examples"]["queue_full"]
    body = doc["components"]["schemas"][create["requestBody"]["content"]["multipart/form-data"]["schema"]["$ref"].split("/")[-1]]
    assert body["properties"]["task"].get("examples") == ["face"]
    error_code = doc["components"]["schemas"]["ErrorBody"]["properties"]["code"]
    assert error_code == {"$ref": "#/components/schemas/ErrorCode"}
    assert "HTTPValidationError" not in doc["components"]["schemas"]
    get_job = doc["paths"]["/v1/jobs/{job_id}"]["get"]
    assert set(get_job["responses"]) == {"200", "401", "403", "404", "422", "500", "503"}
    assert set(doc["paths"]["/v1/jobs/{job_id}"]["delete"]["responses"]) == {
        "200", "401", "403", "404", "409", "500", "503"}  # fmt: skip
    assert create_app  # the app factory the document comes from
