"""Schema fuzzing: schemathesis against the OpenAPI document of a running API, every operation, a fixed seed."""

from __future__ import annotations

import os
import time

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode
from schemathesis.specs.openapi.checks import positive_data_acceptance

from tests.fuzz.conftest import Platform
from tests.support.images import image_bytes
from tests.support.processes import AUTH

pytestmark = [pytest.mark.redis, pytest.mark.slow]

#: Generated cases per operation and mode (``DETECTFLOW_FUZZ_SCHEMA_CASES`` overrides; `make fuzz` raises it).
DEFAULT_SCHEMA_CASES = 50


def _cases() -> int:
    return int(os.environ.get("DETECTFLOW_FUZZ_SCHEMA_CASES", DEFAULT_SCHEMA_CASES))


@pytest.fixture(scope="module")
def api_schema(platform: Platform):
    """The document the running API serves, calls aimed at that API."""
    url = platform.start_api()
    schema = schemathesis.openapi.from_url(f"{url}/openapi.json")
    schema.config.update(base_url=url)
    return schema


#: Checks left out per operation, each for a reason the document cannot express.
_EXCLUDED = {
    # a schema-valid upload is any bytes: whether they are an image is checked by the API (400/413/415),
    # which the media fuzzer (tests/fuzz/test_media.py) covers with real mutated images
    "POST /v1/jobs": [positive_data_acceptance],
    # a schema-valid cursor is any string: only tokens the API handed out are cursors (422 otherwise)
    "GET /v1/jobs": [positive_data_acceptance],
    # cross-field rules the document cannot state: thresholds.uncertain >= thresholds.match
    "POST /v1/galleries": [positive_data_acceptance],
    # the same rule once merged: a PATCH's thresholds with the gallery's current ones
    "PATCH /v1/galleries/{gallery_id}": [positive_data_acceptance],
    # every face's embedding has the export's declared dimension
    "POST /v1/galleries/import": [positive_data_acceptance],
    # every embedding has the gallery's dimension (128 for dlib-resnet-v1)
    "POST /v1/galleries/{gallery_id}/match": [positive_data_acceptance],
    # as POST /v1/jobs: the uploads are any bytes until the API checks they are images
    "POST /v1/galleries/{gallery_id}/subjects/{subject_id}/faces": [positive_data_acceptance],
}


def _fuzz(
    schema, headers: dict[str, str] | None, path_parameters: dict[str, str] | None = None
) -> tuple[int, list[str], list[str]]:
    """Run every operation in both modes; returns (cases sent, failures as text, (operation, mode)s with no case).

    An operation whose parameters are unconstrained strings has no schema-invalid request to make:
    Hypothesis reports that as Unsatisfiable, which is recorded, not failed.
    """
    sent, failures, empty = 0, [], []
    for result in schema.get_all_operations():
        operation = result.ok()
        fixed = {k: v for k, v in (path_parameters or {}).items() if f"{{{k}}}" in operation.path}
        if path_parameters is not None and not fixed:
            continue
        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):

            @given(case=operation.as_strategy(generation_mode=mode, headers=headers, path_parameters=fixed or None))
            @settings(
                max_examples=_cases(),
                derandomize=True,  # a fixed seed: the same cases on every run
                deadline=None,
                database=None,
                suppress_health_check=list(HealthCheck),
            )
            def check(case) -> None:
                nonlocal sent
                sent += 1
                case.call_and_validate(excluded_checks=_EXCLUDED.get(operation.label, []), timeout=30)

            try:
                check()
            except Unsatisfiable:
                empty.append(f"{operation.label} ({mode.value})")
            except (Exception, BaseExceptionGroup) as exc:  # one operation's failure must not hide another's
                failures.append(f"{operation.label} ({mode.value}): {exc}")
    return sent, failures, empty


def _existing(url: str) -> dict[str, str]:
    """Path parameters naming things that exist: a cancelled job (a final one, so `wait` returns at once), a key."""
    with httpx.Client(base_url=url, headers=AUTH, timeout=30) as client:
        job = client.post("/v1/jobs", files={"file": ("a.png", image_bytes("coffee"))}, data={"task": "object"})
        assert job.status_code == 202, job.text
        assert client.delete(f"/v1/jobs/{job.json()['id']}").json()["status"] == "cancelled"
        key = client.post("/v1/keys", json={"tenant": "default", "name": "fuzzed", "scopes": ["jobs:read"]})
        assert key.status_code == 201, key.text
    return {"job_id": job.json()["id"], "key_id": key.json()["id"]}


@pytest.mark.parametrize("auth", ["admin", "anonymous", "admin-existing"])
def test_schema_every_operation_conforms(api_schema, platform: Platform, auth: str, figures):
    # Given the running API, and for "admin-existing" path parameters naming a real job and key
    started = time.monotonic()
    path_parameters = _existing(platform.url) if auth == "admin-existing" else None
    # When every operation is called with generated valid and invalid requests
    sent, failures, empty = _fuzz(api_schema, None if auth == "anonymous" else AUTH, path_parameters)
    figures(
        f"schema fuzz ({auth}): {sent} cases in {time.monotonic() - started:.1f} s, {len(failures)} failures;"
        f" nothing schema-invalid to send for: {', '.join(empty) or 'none'}"
    )
    # Then no answer is a 5xx or strays from the document (status, content type, headers, body schema)
    assert sent and not failures, "\n\n".join(failures)
