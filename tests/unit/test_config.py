"""Unit tests of the settings object."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from detectflow.config import Settings, Task


def test_settings_read_prefixed_environment(monkeypatch):
    monkeypatch.setenv("DETECTFLOW_REDIS_URL", "redis://r:6379/2")
    monkeypatch.setenv("DETECTFLOW_API_MAX_QUEUE_DEPTH", "7")
    monkeypatch.setenv("DETECTFLOW_WORKER_TASK", "object")
    s = Settings()
    assert (s.redis_url, s.api_max_queue_depth, s.worker_task) == ("redis://r:6379/2", 7, Task.object)


def test_settings_refuse_bad_values(monkeypatch):
    monkeypatch.setenv("DETECTFLOW_API_MAX_QUEUE_DEPTH", "0")
    with pytest.raises(ValidationError):
        Settings()


def test_webhook_allowlists_are_empty_by_default_and_read_comma_separated(monkeypatch):
    assert (Settings().webhook_allow_hosts, Settings().webhook_allow_cidrs) == ([], [])
    monkeypatch.setenv("DETECTFLOW_WEBHOOK_ALLOW_HOSTS", "hooks.internal, *.svc.cluster.local")
    monkeypatch.setenv("DETECTFLOW_WEBHOOK_ALLOW_CIDRS", "127.0.0.1/8,::1/128")
    s = Settings()
    assert s.webhook_allow_hosts == ["hooks.internal", "*.svc.cluster.local"]
    assert s.webhook_allow_cidrs == ["127.0.0.0/8", "::1/128"]
    monkeypatch.setenv("DETECTFLOW_WEBHOOK_ALLOW_CIDRS", '["10.0.0.0/8"]')
    assert Settings().webhook_allow_cidrs == ["10.0.0.0/8"]
    monkeypatch.setenv("DETECTFLOW_WEBHOOK_ALLOW_CIDRS", "[]")
    assert Settings().webhook_allow_cidrs == []


def test_webhook_allow_cidrs_refuses_what_is_not_a_network():
    with pytest.raises(ValidationError):
        Settings(webhook_allow_cidrs="10.0.0.0/33")


def test_blank_webhook_secret_is_no_secret(monkeypatch):
    monkeypatch.setenv("DETECTFLOW_WEBHOOK_SECRET", "")
    assert Settings().webhook_secret is None
    assert Settings(webhook_secret="  ").webhook_secret is None


def test_every_task_is_a_declared_kind():
    from detectflow.jobs.kinds import KINDS

    assert set(KINDS) == set(Task)


def test_redis_socket_timeout_must_exceed_the_longest_blocking_call():
    with pytest.raises(ValidationError):
        Settings(redis_socket_timeout_seconds=1.0)
    assert Settings(redis_socket_timeout_seconds=1.5).redis_socket_timeout_seconds == 1.5
