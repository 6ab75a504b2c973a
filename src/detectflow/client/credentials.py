"""Where the client finds the API and its key: arguments, DETECTFLOW_* variables, `detectflow up`'s state file."""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

from detectflow.auth.tokens import new_key
from detectflow.config import DEFAULT_CACHE_DIR

__all__ = ["DEFAULT_API_URL", "admin_key_path", "ensure_admin_key", "resolve_api_key", "resolve_api_url"]

DEFAULT_API_URL = "http://127.0.0.1:8000"  # where `detectflow up` serves the API


def _state_dir(env: Mapping[str, str]) -> Path:
    return Path(env.get("DETECTFLOW_STATE_DIR") or DEFAULT_CACHE_DIR / "state").expanduser()


def admin_key_path(state_dir: Path | str | None = None, env: Mapping[str, str] = os.environ) -> Path:
    """Where `detectflow up` keeps its admin key: ``<state_dir>/admin.key``.

    Parameters
    ----------
    state_dir
        The state directory (default: DETECTFLOW_STATE_DIR, else ~/.cache/detectflow/state).
    env
        The environment to read DETECTFLOW_STATE_DIR from.
    """
    return (Path(state_dir).expanduser() if state_dir is not None else _state_dir(env)) / "admin.key"


def ensure_admin_key(state_dir: Path | str | None = None) -> str:
    """The admin key of `detectflow up`: read from ``admin.key``, or made and written there once (mode 0600)."""
    path = admin_key_path(state_dir)
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        key = new_key()
        path.touch(mode=0o600)
        path.write_text(key + "\n")
        return key
    return path.read_text().strip()


def resolve_api_key(api_key: str | None = None, env: Mapping[str, str] = os.environ) -> str | None:
    """The key to send: the argument, else DETECTFLOW_API_KEY, else the admin key `detectflow up` wrote, else None.

    Parameters
    ----------
    api_key
        A key given explicitly.
    env
        The environment (DETECTFLOW_API_KEY, DETECTFLOW_STATE_DIR).
    """
    if api_key:
        return api_key
    if env.get("DETECTFLOW_API_KEY"):
        return env["DETECTFLOW_API_KEY"]
    path = admin_key_path(env=env)
    try:
        return path.read_text().strip() or None
    except OSError:  # absent or unreadable: send no key
        return None


def resolve_api_url(base_url: str | None = None, env: Mapping[str, str] = os.environ) -> str:
    """The API's base URL: the argument, else DETECTFLOW_API_URL, else `detectflow up`'s http://127.0.0.1:8000."""
    return (base_url or env.get("DETECTFLOW_API_URL") or DEFAULT_API_URL).rstrip("/")
