"""Media fuzzing: mutated real images through the API to real face and object workers; every case gets a stable code."""

from __future__ import annotations

import collections
import os
import time
from pathlib import Path

import pytest

from detectflow.jobs.errors import HTTP_STATUS, ErrorCode
from tests.fuzz.conftest import Platform
from tests.support.mutations import DEFAULT_SEED, Mutant, mutants, seed_corpus

pytestmark = [pytest.mark.redis, pytest.mark.models, pytest.mark.slow]

#: Cases in `make test` (``DETECTFLOW_FUZZ_MEDIA_CASES`` overrides; `make fuzz` runs 2,000).
DEFAULT_MEDIA_CASES = 500
#: Cases submitted between two checks that the worker processes are the same (narrows down a crash).
DEFAULT_CHECK_EVERY = 100
#: Longest the accepted jobs may take to end once the last case is in (seconds).
DEFAULT_DRAIN_SECONDS = 180

#: Every stable code: a refused request's and a failed job's.
CODES = {c.value for c in ErrorCode}


def _cases() -> int:
    return int(os.environ.get("DETECTFLOW_FUZZ_MEDIA_CASES", DEFAULT_MEDIA_CASES))


def _refusal_problem(status: int, body: object) -> str | None:
    """What is wrong with a refusal (None: a 4xx with the structured error body and a stable code)."""
    if not 400 <= status < 500:
        return f"answered {status}"
    error = body.get("error") if isinstance(body, dict) else None
    if not isinstance(error, dict) or error.get("code") not in CODES or not isinstance(error.get("message"), str):
        return f"{status} without a structured error body: {body!r:.300}"
    if HTTP_STATUS.get(ErrorCode(error["code"]), 400) != status:
        return f"{status} with code {error['code']} (which is {HTTP_STATUS.get(ErrorCode(error['code']))})"
    return None


def _keep(case: Mutant, where: Path) -> Path:
    """Write a failing case's bytes next to the logs, to reproduce it."""
    path = where / f"case{case.index}.bin"
    path.write_bytes(case.data)
    return path


def test_media_fuzz_every_case_gets_a_stable_code_and_no_worker_dies(platform: Platform, tmp_path: Path, figures):
    # Given the API and one face and one object worker (limits high enough that no case meets a quota)
    limits = {"key_rate_limit_per_second": 100_000, "key_burst": 100_000, "key_max_queued_jobs": 1_000_000}
    platform.start_api(api_max_queue_depth=100_000, **limits)
    workers = [platform.start_worker("face"), platform.start_worker("object")]
    pids = platform.worker_pids()
    assert len(pids) == 2, pids
    corpus, count = seed_corpus(), _cases()
    answers: collections.Counter[str] = collections.Counter()
    problems: list[str] = []
    accepted: dict[str, Mutant] = {}
    started = time.monotonic()

    # When every case is submitted, alternately as a face and an object job
    with platform.client() as client:
        batch: list[Mutant] = []
        for case in mutants(corpus, count, DEFAULT_SEED):
            task = ("face", "object")[case.index % 2]
            resp = client.post("/v1/jobs", files={"file": (case.filename, case.data)}, data={"task": task, "cache": "false"})
            body = resp.json() if resp.headers.get("content-type", "").startswith("application/json") else resp.text
            if resp.status_code == 202:
                accepted[body["id"]] = case
                answers["202"] += 1
            else:
                answers[f"{resp.status_code} {body.get('error', {}).get('code') if isinstance(body, dict) else '?'}"] += 1
                if problem := _refusal_problem(resp.status_code, body):
                    problems.append(f"{case.describe()} [{task}]: {problem} (bytes: {_keep(case, tmp_path)})")
            batch.append(case)
            if len(batch) == DEFAULT_CHECK_EVERY or case.index == count - 1:
                now = platform.worker_pids()
                assert now == pids and all(w.popen.poll() is None for w in workers), (
                    f"a worker process died during cases {batch[0].index}..{batch[-1].index} (pids {pids} -> {now}):\n"
                    + "\n".join(c.describe() for c in batch)
                )
                batch = []
        submitted = time.monotonic()

        # Then every accepted job ends, succeeded or failed with a stable code
        outcomes: collections.Counter[str] = collections.Counter()
        deadline = submitted + DEFAULT_DRAIN_SECONDS
        for job_id, case in accepted.items():
            while (job := client.get(f"/v1/jobs/{job_id}", params={"wait": 10}).json())["status"] not in (
                "succeeded", "failed"
            ):  # fmt: skip
                assert time.monotonic() < deadline, f"{case.describe()}: job {job_id} still {job['status']}"
            code = (job.get("error") or {}).get("code")
            outcomes[job["status"] if job["status"] == "succeeded" else f"failed {code}"] += 1
            if job["status"] == "failed" and code not in CODES:
                problems.append(f"{case.describe()}: job failed without a stable code: {job.get('error')!r}")
    drained = time.monotonic()

    figures(
        f"media fuzz: {count} cases (seed {DEFAULT_SEED}) submitted in {submitted - started:.1f} s,"
        f" {len(accepted)} jobs ended {drained - submitted:.1f} s later; answers {dict(sorted(answers.items()))};"
        f" jobs {dict(sorted(outcomes.items()))}"
    )
    # And no answer was a 5xx or unstructured, and the worker processes are the ones that started
    assert not problems, "\n".join(problems[:50])
    assert not any(a.startswith("5") for a in answers), answers
    assert platform.worker_pids() == pids
    assert platform.api.popen.poll() is None
    assert outcomes["succeeded"] > 0 and answers["202"] > 0 and len(answers) > 3  # the cases reach both sides
