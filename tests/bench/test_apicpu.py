"""bench.apicpu: API CPU per request of detectflow and the Celery stack, measured on the real stacks."""

from __future__ import annotations

import pytest

from bench.apicpu import KINDS, measure, render

pytestmark = [pytest.mark.redis, pytest.mark.models, pytest.mark.slow]


def test_apicpu_measures_every_request_kind_of_both_stacks():
    res = measure(requests=20, rounds=1)
    assert set(res["cpu"]) == {"detectflow", "celery"}
    for name, by_kind in res["cpu"].items():
        assert list(by_kind) == list(KINDS)
        assert all(0 < v[0] < 100 for v in by_kind.values()), (name, by_kind)  # ms of CPU per request
    text = render(res, 20, 1)
    assert "| POST /v1/jobs |" in text and text.count("x |") == len(KINDS)
