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


def test_prod_forbids_private_webhooks():
    assert Settings(env="prod", webhook_allow_private=True).allows_private_webhooks is False
    assert Settings(env="dev", webhook_allow_private=True).allows_private_webhooks is True


def test_every_task_is_a_declared_kind():
    from detectflow.jobs.kinds import KINDS

    assert set(KINDS) == set(Task)


def test_redis_socket_timeout_must_exceed_the_longest_blocking_call():
    with pytest.raises(ValidationError):
        Settings(redis_socket_timeout_seconds=1.0)
    assert Settings(redis_socket_timeout_seconds=1.5).redis_socket_timeout_seconds == 1.5
