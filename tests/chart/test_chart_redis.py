"""The chart's Redis configuration run for real: the init container's script writes the password
file, a real redis-server loads the rendered redis.conf (paths moved to a temporary directory)."""

from __future__ import annotations

import subprocess
import time
from pathlib import Path

import pytest
import redis

from detectflow.cli.up import find_redis_server, free_port
from tests.chart.conftest import Helm, find

pytestmark = [pytest.mark.redis]

#: A password with the characters the escaping must survive.
PASSWORD = 'p@ss "word" \\ with spaces'


def test_chart_redis_password_comes_from_the_file_not_argv(helm: Helm, tmp_path: Path) -> None:
    # Given the rendered ConfigMap and init container, with their paths moved under tmp_path
    docs = helm.template("redis.enabled=true")
    conf = find(docs, "ConfigMap")[0]["data"]["redis.conf"]
    pod = find(docs, "StatefulSet")[0]["spec"]["template"]["spec"]
    (init,) = pod["initContainers"]
    auth_dir, data_dir = tmp_path / "auth", tmp_path / "data"
    auth_dir.mkdir()
    data_dir.mkdir()
    script = init["command"][2].replace("/run/redis-auth", str(auth_dir))
    # When the init script runs with the password in its environment (as the kubelet gives it)
    subprocess.run(["sh", "-c", script], env={"REDIS_PASSWORD": PASSWORD, "PATH": "/usr/bin:/bin"}, check=True)
    assert (auth_dir / "auth.conf").stat().st_mode & 0o077 == 0
    port = free_port()
    local = (
        conf.replace("/run/redis-auth", str(auth_dir))
        .replace("dir /data", f"dir {data_dir}")
        .replace("bind * -::*", "bind 127.0.0.1")
        .replace("port 6379", f"port {port}")
    )
    (tmp_path / "redis.conf").write_text(local)
    # And redis-server starts with the rendered command (config file only)
    (c,) = pod["containers"]
    assert c["command"] == ["redis-server", "/etc/redis/redis.conf"]
    proc = subprocess.Popen([find_redis_server(), str(tmp_path / "redis.conf")], stdout=subprocess.DEVNULL)
    try:
        client = redis.Redis(port=port, password=PASSWORD, socket_timeout=5)
        for _ in range(100):
            try:
                client.ping()
                break
            except redis.ConnectionError:
                time.sleep(0.05)
        # Then the password works, no password is refused, and it is in no argv
        assert client.ping()
        with pytest.raises(redis.AuthenticationError):
            redis.Redis(port=port, socket_timeout=5).set("k", "v")
        assert PASSWORD.encode() not in Path(f"/proc/{proc.pid}/cmdline").read_bytes()
        got = {k: client.config_get(k)[k] for k in ("maxmemory", "maxmemory-policy", "protected-mode")}
        assert got == {"maxmemory": str(768 * 1024**2), "maxmemory-policy": "noeviction", "protected-mode": "yes"}
        # And a full Redis refuses writes instead of evicting (what the API turns into a 503)
        client.config_set("maxmemory", "1")
        with pytest.raises(redis.ResponseError, match="maxmemory"):
            client.set("k", "v")
    finally:
        proc.terminate()
        proc.wait(timeout=10)
