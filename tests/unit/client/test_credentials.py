"""Where the client finds its API key and URL."""

from __future__ import annotations

from detectflow.client.credentials import admin_key_path, ensure_admin_key, resolve_api_key, resolve_api_url


def test_resolve_api_key_prefers_the_argument_then_the_variable_then_the_state_file(tmp_path):
    env = {"DETECTFLOW_STATE_DIR": str(tmp_path)}
    assert resolve_api_key(None, env) is None
    (tmp_path / "admin.key").write_text("dfk_state\n")
    assert resolve_api_key(None, env) == "dfk_state"
    assert resolve_api_key(None, {**env, "DETECTFLOW_API_KEY": "dfk_env"}) == "dfk_env"
    assert resolve_api_key("dfk_arg", {**env, "DETECTFLOW_API_KEY": "dfk_env"}) == "dfk_arg"


def test_ensure_admin_key_writes_a_private_key_once(tmp_path):
    key = ensure_admin_key(tmp_path / "state")
    path = admin_key_path(tmp_path / "state")
    assert path.stat().st_mode & 0o777 == 0o600
    assert ensure_admin_key(tmp_path / "state") == key == path.read_text().strip()


def test_resolve_api_url_defaults_to_detectflow_up():
    assert resolve_api_url(None, {}) == "http://127.0.0.1:8000"
    assert resolve_api_url(None, {"DETECTFLOW_API_URL": "http://h:1/"}) == "http://h:1"
    assert resolve_api_url("http://x", {"DETECTFLOW_API_URL": "http://h:1"}) == "http://x"
