"""What CLI commands that call a running API share: its URL and the API key they send."""

from __future__ import annotations

from pathlib import Path

from detectflow.auth.tokens import new_key
from detectflow.config import Settings

__all__ = ["admin_key_path", "ensure_admin_key", "api_key", "auth_headers"]


def admin_key_path(settings: Settings) -> Path:
    """Where `detectflow up` keeps its admin key: ``<state_dir>/admin.key``."""
    return Path(settings.state_dir).expanduser() / "admin.key"


def ensure_admin_key(settings: Settings) -> str:
    """The admin key of `detectflow up`: read from ``admin.key``, or made and written there once (mode 0600)."""
    path = admin_key_path(settings)
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        key = new_key()
        path.touch(mode=0o600)
        path.write_text(key + "\n")
        return key
    return path.read_text().strip()


def api_key(settings: Settings) -> str | None:
    """The key to send: DETECTFLOW_API_KEY, else the admin key `detectflow up` wrote, else None."""
    if settings.api_key is not None:
        return settings.api_key.get_secret_value()
    path = admin_key_path(settings)
    return path.read_text().strip() if path.exists() else None


def auth_headers(settings: Settings) -> dict[str, str]:
    """``Authorization: Bearer <key>`` when there is a key to send."""
    key = api_key(settings)
    return {"Authorization": f"Bearer {key}"} if key else {}
