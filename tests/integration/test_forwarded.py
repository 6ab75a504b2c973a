"""uvicorn trusts X-Forwarded-* only from the configured proxies: a real `detectflow api` process."""

from __future__ import annotations

import uuid
from pathlib import Path

import httpx
import pytest

from detectflow.cli.up import RedisServer
from tests.support.images import image_bytes
from tests.support.processes import AUTH, cli_env, start_api

pytestmark = pytest.mark.redis

FORWARDED = {"X-Forwarded-Proto": "https", "X-Forwarded-For": "203.0.113.9", **AUTH}


def _self_link(redis_server: RedisServer, tmp_path: Path, **settings: object) -> str:
    env = cli_env(redis_url=redis_server.url, redis_prefix=f"test{uuid.uuid4().hex[:10]}",
                  state_dir=tmp_path / "state", **settings)  # fmt: skip
    proc, url = start_api(env, tmp_path / "api.log")
    try:
        res = httpx.post(f"{url}/v1/jobs", files={"file": ("a.png", image_bytes("astronaut"))},
                         data={"task": "face"}, headers=FORWARDED, timeout=10)  # fmt: skip
        assert res.status_code == 202, res.text
        return res.json()["links"]["self"]
    finally:
        proc.stop()


def test_forwarded_headers_are_ignored_without_trusted_proxies(redis_server: RedisServer, tmp_path: Path) -> None:
    assert _self_link(redis_server, tmp_path).startswith("http://127.0.0.1:")


def test_forwarded_headers_are_honoured_from_a_trusted_proxy(redis_server: RedisServer, tmp_path: Path) -> None:
    assert _self_link(redis_server, tmp_path, api_forwarded_allow_ips="127.0.0.0/8").startswith("https://127.0.0.1:")


def test_public_url_wins_over_the_request(redis_server: RedisServer, tmp_path: Path) -> None:
    link = _self_link(redis_server, tmp_path, api_public_url="https://detect.example.com")
    assert link.startswith("https://detect.example.com/v1/jobs/")
