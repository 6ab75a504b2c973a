"""Unit tests of how `detectflow api` runs uvicorn: options from the settings, the header-timeout rule."""

from __future__ import annotations

import resource
from types import SimpleNamespace

from uvicorn import Config
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from detectflow.api.server import (
    api_protocol,
    is_waiting_for_headers,
    proxy_options,
    raise_open_files_limit,
    uvicorn_options,
)
from detectflow.config import Settings


def test_uvicorn_options_carry_the_settings():
    s = Settings(api_limit_concurrency=100, api_header_timeout_seconds=3, api_max_header_bytes=8192, api_keepalive_seconds=7)
    options = uvicorn_options(s)
    assert options["limit_concurrency"] == 100
    assert options["timeout_keep_alive"] == 7
    assert issubclass(options["http"], HttpToolsProtocol)
    assert options["http"].header_timeout == 3 and options["http"].max_header_bytes == 8192


def test_uvicorn_options_are_accepted_by_uvicorn():
    config = Config("detectflow.api.app:create_app", factory=True, **uvicorn_options(Settings()))
    config.load()
    assert config.http_protocol_class.header_timeout == Settings().api_header_timeout_seconds
    assert config.limit_concurrency == Settings().api_limit_concurrency


def test_api_protocol_is_one_class_per_timeout_and_cap():
    assert (api_protocol(1, 4096).header_timeout, api_protocol(1, 4096).max_header_bytes) == (1, 4096)
    assert (api_protocol(2, 8192).header_timeout, api_protocol(2, 8192).max_header_bytes) == (2, 8192)


def test_is_waiting_for_headers_only_between_requests():
    assert is_waiting_for_headers(None)  # nothing received yet
    assert is_waiting_for_headers(SimpleNamespace(response_complete=True))  # between keep-alive requests
    assert not is_waiting_for_headers(SimpleNamespace(response_complete=False))  # a request (a long poll) runs


def test_raise_open_files_limit_never_lowers_nor_passes_the_hard_limit():
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    try:
        assert raise_open_files_limit(16) == soft  # already enough
        got = raise_open_files_limit(10**9)
        assert got == (hard if hard != resource.RLIM_INFINITY else 10**9 + 256)
    finally:
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))


def test_proxy_options_trust_no_proxy_by_default():
    assert proxy_options("") == {"proxy_headers": False}
    assert uvicorn_options(Settings())["proxy_headers"] is False


def test_proxy_options_trust_the_listed_proxies_only():
    options = proxy_options(" 10.42.0.0/16, 192.168.1.7 ")
    assert options == {"proxy_headers": True, "forwarded_allow_ips": ["10.42.0.0/16", "192.168.1.7"]}
    config = Config("detectflow.api.app:create_app", factory=True, **uvicorn_options(Settings(api_forwarded_allow_ips="10.42.0.0/16")))
    assert config.proxy_headers and config.forwarded_allow_ips == ["10.42.0.0/16"]
