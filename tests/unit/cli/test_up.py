"""`detectflow up`'s port check: TIME-WAIT sockets of a previous run do not block, a listener does."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest
import typer

from detectflow.cli.up import _check_port_free


def _time_wait_port() -> int:
    """A loopback port left with a server-side TIME-WAIT socket (the server closed first, as uvicorn on stop)."""
    server = socket.socket()
    server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    server.bind(("127.0.0.1", 0))
    server.listen()
    port = server.getsockname()[1]
    client = socket.create_connection(("127.0.0.1", port))
    conn, _ = server.accept()
    conn.close()  # active close: this side goes to TIME-WAIT
    client.recv(1)
    client.close()
    server.close()
    return port


def _tcp_states(port: int) -> set[str]:
    states = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for line in Path(table).read_text().splitlines()[1:]:
            fields = line.split()
            if int(fields[1].rsplit(":", 1)[1], 16) == port:
                states.add(fields[3])
    return states


def test_check_port_free_accepts_a_port_in_time_wait():
    # Given a port whose last connection is in TIME-WAIT and nothing listening
    port = _time_wait_port()
    assert "06" in _tcp_states(port)  # TCP_TIME_WAIT
    with socket.socket() as plain, pytest.raises(OSError):  # a bind without SO_REUSEADDR trips on it
        plain.bind(("127.0.0.1", port))
    # Then the check passes
    _check_port_free("127.0.0.1", port)


def test_check_port_free_refuses_a_listening_port():
    with socket.socket() as busy:
        busy.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as uvicorn and redis-server bind
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        with pytest.raises(typer.Exit):
            _check_port_free("127.0.0.1", busy.getsockname()[1])


def test_up_refuses_an_unknown_appendfsync_before_starting_anything(tmp_path: Path, monkeypatch):
    from typer.testing import CliRunner

    from detectflow.cli.main import app

    from detectflow.config import get_settings

    monkeypatch.setenv("DETECTFLOW_STATE_DIR", str(tmp_path / "state"))
    get_settings.cache_clear()
    try:
        res = CliRunner().invoke(app, ["up", "--appendfsync", "sometimes", "--no-build-models"])
    finally:
        get_settings.cache_clear()  # no other test may see this environment's settings
    assert res.exit_code == 2
    assert "--appendfsync must be always, everysec or no" in res.output
    assert not (tmp_path / "state").exists()


def test_worker_metrics_port_is_one_per_worker_process_and_zero_stays_off():
    from detectflow.cli.up import worker_metrics_port

    assert [worker_metrics_port(9465, n) for n in range(3)] == [9465, 9466, 9467]
    assert worker_metrics_port(0, 2) == 0
