"""Loopback Kubernetes cluster for tests (stdlib + subprocess only).

The cluster is the real control plane (etcd, kube-apiserver with RBAC, kube-controller-manager,
kube-scheduler) plus kwok fake nodes, run as local processes by ``scripts/cluster/up.sh`` with its
state in ``.cluster/`` at the repo root. See docs/development.md.

    from tests.support.cluster import ensure_cluster, stop_cluster

    @pytest.fixture(scope="session")
    def cluster():
        info = ensure_cluster()          # reuses a running cluster (make cluster-up), else starts one
        yield info
        stop_cluster()                   # stops it only if a helper started it and no other
                                         # test process still uses it (force=True: always)

    def test_x(cluster):
        cluster.kubectl("get", "nodes")                  # CompletedProcess, check=True
        cluster.kubectl_json("get", "nodes")["items"]    # parsed -o json
        env = cluster.env()                              # KUBECONFIG + PATH with our binaries

KEDA (operator, and metrics adapter when built) is started on demand::

    keda = start_keda()      # installs KEDA's CRDs from the Go module cache, starts the processes
    ...
    stop_keda()

Environment: ``DETECTFLOW_CLUSTER_STATE`` overrides the state dir (default <repo>/.cluster),
``DETECTFLOW_CACHE`` the binary cache root (default ~/.cache/detectflow).
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import shutil
import subprocess
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator

from tests.support.polling import wait_for

__all__ = [
    "ClusterInfo",
    "KedaInfo",
    "ClusterError",
    "repo_root",
    "state_dir",
    "bin_dir",
    "cluster_running",
    "ensure_cluster",
    "stop_cluster",
    "keda_crd_dir",
    "install_keda_crds",
    "start_keda",
    "stop_keda",
    "keda_is_running",
    "keda_running",
    "wait_for",
]

REPO_ROOT = Path(__file__).resolve().parents[2]
SCRIPTS = REPO_ROOT / "scripts" / "cluster"

_started_here = False  # this process started the cluster (stop_cluster stops only then by default)
_keda_started_here = False


class ClusterError(RuntimeError):
    """The cluster (or KEDA) could not be started or reached."""


@dataclass(frozen=True)
class ClusterInfo:
    kubeconfig: Path
    bin_dir: Path
    apiserver_url: str
    state_dir: Path
    started_here: bool = False
    ports: dict[str, int] = field(default_factory=dict)

    @property
    def kubectl_path(self) -> str:
        built = self.bin_dir / "kubectl"
        if built.exists():
            return str(built)
        return shutil.which("kubectl") or "kubectl"

    @property
    def helm_path(self) -> Path:
        """helm v3 built by scripts/cluster/build.sh (may be missing: build.sh --only helm)."""
        return self.bin_dir / "helm"

    def env(self, base: dict[str, str] | None = None) -> dict[str, str]:
        """An environment with KUBECONFIG set and our binaries first on PATH."""
        env = dict(os.environ if base is None else base)
        env["KUBECONFIG"] = str(self.kubeconfig)
        env["PATH"] = f"{self.bin_dir}{os.pathsep}{env.get('PATH', '')}"
        return env

    def kubectl(
        self,
        *args: str,
        input: str | None = None,
        check: bool = True,
        timeout: float = 120,
    ) -> subprocess.CompletedProcess[str]:
        """Run kubectl against the cluster; raises CalledProcessError (with stderr) if check."""
        cmd = [self.kubectl_path, f"--kubeconfig={self.kubeconfig}", *args]
        proc = subprocess.run(cmd, input=input, capture_output=True, text=True, timeout=timeout)
        if check and proc.returncode != 0:
            raise subprocess.CalledProcessError(proc.returncode, cmd, proc.stdout, proc.stderr)
        return proc

    def kubectl_json(self, *args: str, timeout: float = 120) -> Any:
        return json.loads(self.kubectl(*args, "-o", "json", timeout=timeout).stdout)

    def apply(self, manifest: str, *args: str) -> subprocess.CompletedProcess[str]:
        """kubectl apply -f - with the given YAML/JSON text."""
        return self.kubectl("apply", "-f", "-", *args, input=manifest)


@dataclass(frozen=True)
class KedaInfo:
    namespace: str
    cert_dir: Path
    crd_dir: Path
    probe_url: str  # operator health (GET /healthz, /readyz)
    metrics_url: str  # operator Prometheus metrics
    grpc_address: str  # operator gRPC metrics service (used by the adapter)
    adapter_url: str | None  # https URL of the metrics adapter, None if not running
    operator_log: Path
    adapter_log: Path | None


# --- paths -----------------------------------------------------------------------------------


def repo_root() -> Path:
    return REPO_ROOT


def state_dir() -> Path:
    return Path(os.environ.get("DETECTFLOW_CLUSTER_STATE", REPO_ROOT / ".cluster")).resolve()


def _script_env() -> dict[str, str]:
    env = dict(os.environ)
    env["CLUSTER_STATE_DIR"] = str(state_dir())
    env["DETECTFLOW_CLUSTER_LOCK_HELD"] = "1"  # scripts are only run under _lock() (or need none)
    return env


def bin_dir() -> Path:
    """Directory of the built binaries for the pinned versions (may not exist yet)."""
    out = subprocess.run(
        ["bash", str(SCRIPTS / "build.sh"), "--print-bin-dir"],
        capture_output=True, text=True, check=True, env=_script_env(),
    )
    return Path(out.stdout.strip())


def _read_env(path: Path) -> dict[str, str]:
    out: dict[str, str] = {}
    for line in path.read_text().splitlines():
        line = line.strip()
        if line and not line.startswith("#") and "=" in line:
            k, v = line.split("=", 1)
            out[k] = v
    return out


@contextlib.contextmanager
def _lock() -> Iterator[None]:
    """Serialise start/stop between processes (e.g. pytest-xdist workers)."""
    cache = Path(os.environ.get("DETECTFLOW_CACHE", Path.home() / ".cache" / "detectflow"))
    cache.mkdir(parents=True, exist_ok=True)
    key = hashlib.sha256(str(state_dir()).encode()).hexdigest()[:12]
    with open(cache / f"cluster-{key}.lock", "w") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def _pid_alive(name: str) -> bool:
    pidfile = state_dir() / "pids" / f"{name}.pid"
    try:
        pid = int(pidfile.read_text().strip())
        os.kill(pid, 0)
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
    except (OSError, ValueError):
        return False
    return name.encode() in cmdline


def _info(started_here: bool = False) -> ClusterInfo:
    env = _read_env(state_dir() / "cluster.env")
    ports = {
        k.removeprefix("CLUSTER_").removesuffix("_PORT").lower(): int(v)
        for k, v in env.items()
        if k.endswith("_PORT")
    }
    return ClusterInfo(
        kubeconfig=Path(env["CLUSTER_KUBECONFIG"]),
        bin_dir=Path(env["CLUSTER_BIN_DIR"]),
        apiserver_url=env["CLUSTER_APISERVER_URL"],
        state_dir=state_dir(),
        started_here=started_here,
        ports=ports,
    )


def cluster_running() -> bool:
    """True when every control-plane process of .cluster/ is alive and the apiserver is ready."""
    if not (state_dir() / "cluster.env").exists():
        return False
    if not all(
        _pid_alive(n)
        for n in ("etcd", "kube-apiserver", "kube-controller-manager", "kube-scheduler", "kwok")
    ):
        return False
    try:
        proc = _info().kubectl("get", "--raw=/readyz", check=False, timeout=10)
    except (OSError, KeyError, subprocess.TimeoutExpired):
        return False
    return proc.returncode == 0


# --- cluster ---------------------------------------------------------------------------------


def _register_user() -> None:
    users = state_dir() / "users"
    users.mkdir(parents=True, exist_ok=True)
    (users / str(os.getpid())).touch()


def _live_users() -> list[int]:
    users = state_dir() / "users"
    live = []
    for f in users.glob("*") if users.is_dir() else []:
        try:
            pid = int(f.name)
            os.kill(pid, 0)
        except (ValueError, ProcessLookupError):
            f.unlink(missing_ok=True)
            continue
        except PermissionError:
            pass
        live.append(pid)
    return live


def _owner() -> str:
    try:
        return (state_dir() / "owner").read_text().strip()
    except OSError:
        return "manual"


def ensure_cluster(*, build: bool = True, timeout: float | None = None) -> ClusterInfo:
    """Return the running cluster, starting it with scripts/cluster/up.sh if needed.

    The calling process is registered as a user of the cluster (.cluster/users/<pid>).
    build=False makes a missing binary an error instead of a (long, cold: ~10-15 min) build.
    timeout bounds up.sh (None: no bound, since a cold build can be long).
    """
    global _started_here
    with _lock():
        if cluster_running():
            _register_user()
            return _info(started_here=_started_here)
        cmd = ["bash", str(SCRIPTS / "up.sh")]
        if not build:
            cmd.append("--no-build")
        env = _script_env()
        env["DETECTFLOW_CLUSTER_OWNER"] = "helper"
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=env)
        if proc.returncode != 0 or not cluster_running():
            raise ClusterError(
                f"scripts/cluster/up.sh failed (exit {proc.returncode}); logs in "
                f"{state_dir() / 'logs'}\n--- stdout\n{proc.stdout[-4000:]}\n"
                f"--- stderr\n{proc.stderr[-4000:]}"
            )
        _started_here = True
        _register_user()
        return _info(started_here=True)


def stop_cluster(*, force: bool = False) -> bool:
    """Release this process's use of the cluster; stop it (scripts/cluster/down.sh) when due.

    Stops it only if it was started by this helper (not by `make cluster-up`) and no other live
    process registered by ensure_cluster() still uses it, so concurrent test sessions share one
    cluster safely. force=True stops it regardless. Also stops KEDA. Returns True if stopped.
    """
    global _started_here, _keda_started_here
    with _lock():
        (state_dir() / "users" / str(os.getpid())).unlink(missing_ok=True)
        if not force and (_owner() != "helper" or _live_users()):
            return False
        if not (state_dir() / "pids").is_dir():
            return False
        proc = subprocess.run(
            ["bash", str(SCRIPTS / "down.sh")], capture_output=True, text=True, env=_script_env()
        )
        if proc.returncode != 0:
            raise ClusterError(f"scripts/cluster/down.sh failed:\n{proc.stdout}\n{proc.stderr}")
        _started_here = False
        _keda_started_here = False
        return True


# --- KEDA ------------------------------------------------------------------------------------


def keda_crd_dir() -> Path:
    """config/crd/bases of the pinned KEDA module in the Go module cache (downloaded if needed)."""
    out = subprocess.run(
        ["bash", str(SCRIPTS / "keda.sh"), "crd-dir"],
        capture_output=True, text=True, check=True, env=_script_env(),
    )
    path = Path(out.stdout.strip())
    if not path.is_dir():
        raise ClusterError(f"KEDA CRD dir not found: {path}")
    return path


def install_keda_crds(info: ClusterInfo | None = None) -> Path:
    """Apply KEDA's CRDs (ScaledObject, ScaledJob, TriggerAuthentication, ...) and wait for them."""
    info = info or ensure_cluster()
    crds = keda_crd_dir()
    info.kubectl("apply", "--server-side", "--force-conflicts", "-f", str(crds))
    info.kubectl("wait", "--for=condition=Established", "--timeout=60s", "-f", str(crds))
    return crds


def _keda_info() -> KedaInfo:
    env = _read_env(state_dir() / "keda.env")
    logs = state_dir() / "logs"
    adapter = _pid_alive("keda-adapter")
    return KedaInfo(
        namespace=env["KEDA_NAMESPACE"],
        cert_dir=Path(env["KEDA_CERT_DIR"]),
        crd_dir=Path(env["KEDA_CRD_DIR"]),
        probe_url=f"http://127.0.0.1:{env['KEDA_PROBE_PORT']}",
        metrics_url=f"http://127.0.0.1:{env['KEDA_METRICS_PORT']}/metrics",
        grpc_address=f"127.0.0.1:{env['KEDA_GRPC_PORT']}",
        adapter_url=f"https://127.0.0.1:{env['KEDA_ADAPTER_PORT']}" if adapter else None,
        operator_log=logs / "keda-operator.log",
        adapter_log=logs / "keda-adapter.log" if adapter else None,
    )


def keda_is_running() -> bool:
    return _pid_alive("keda-operator") and (state_dir() / "keda.env").exists()


def start_keda(*, adapter: bool = True, timeout: float | None = None) -> KedaInfo:
    """Start the KEDA operator (and metrics adapter if built and adapter=True) against the cluster.

    Ensures the cluster, builds KEDA if missing (long when cold), installs its CRDs from the module
    cache, runs the operator with WATCH_NAMESPACE="" and KEDA_CLUSTER_OBJECT_NAMESPACE=keda and a
    cert dir (ca.crt/tls.crt/tls.key). With the adapter it registers the external metrics
    APIService. Reuses a running KEDA.
    """
    global _keda_started_here
    ensure_cluster()
    with _lock():
        if keda_is_running():
            return _keda_info()
        cmd = ["bash", str(SCRIPTS / "keda.sh"), "start"]
        if not adapter:
            cmd.append("--no-adapter")
        proc = subprocess.run(
            cmd, capture_output=True, text=True, timeout=timeout, env=_script_env()
        )
        if proc.returncode != 0:
            raise ClusterError(
                f"scripts/cluster/keda.sh start failed (exit {proc.returncode}); logs in "
                f"{state_dir() / 'logs'}\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
            )
        _keda_started_here = True
        return _keda_info()


def stop_keda() -> None:
    """Stop KEDA's processes and remove the external metrics APIService (CRDs stay)."""
    global _keda_started_here
    with _lock():
        subprocess.run(
            ["bash", str(SCRIPTS / "keda.sh"), "stop"],
            capture_output=True, text=True, check=True, env=_script_env(),
        )
        _keda_started_here = False


@contextlib.contextmanager
def keda_running(*, adapter: bool = True) -> Iterator[KedaInfo]:
    """Context manager: start KEDA if it is not running, stop it afterwards only if started here."""
    was_running = keda_is_running()
    info = start_keda(adapter=adapter)
    try:
        yield info
    finally:
        if not was_running:
            stop_keda()


