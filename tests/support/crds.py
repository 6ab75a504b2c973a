"""Third-party CRDs the chart and the operator may render objects of, applied from their published YAML in
Go modules (downloaded once through the Go module proxy into ~/.cache/detectflow/gomod, never copied here):
the Prometheus operator's ServiceMonitor, PodMonitor and PrometheusRule, and Gateway API's HTTPRoute."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

from detectflow.config import DEFAULT_CACHE_DIR
from tests.support.cluster import ClusterInfo

__all__ = ["GATEWAY_API", "PROMETHEUS_OPERATOR", "install_gateway_crds", "install_monitoring_crds", "module_dir"]

#: (module, version, directory of its CRDs, files applied). v0.85.0 is the newest version of the root module
#: the proxy serves (later tags exist only for its pkg/apis submodule).
PROMETHEUS_OPERATOR = (
    "github.com/prometheus-operator/prometheus-operator", "v0.85.0", "example/prometheus-operator-crd",
    ("monitoring.coreos.com_servicemonitors.yaml", "monitoring.coreos.com_podmonitors.yaml",
     "monitoring.coreos.com_prometheusrules.yaml"),
)  # fmt: skip
#: Gateway API's standard channel: only the HTTPRoute CRD is needed (the operator renders routes, not Gateways).
GATEWAY_API = ("sigs.k8s.io/gateway-api", "v1.6.3", "config/crd/standard", ("gateway.networking.k8s.io_httproutes.yaml",))
#: Go module cache of these downloads (the files there are read-only; `go clean -modcache` with it set removes them).
DEFAULT_MODCACHE = DEFAULT_CACHE_DIR / "gomod"


def module_dir(module: str, version: str, timeout: float = 300) -> Path:
    """The directory of ``module@version`` in the cache, downloaded with `go mod download -json` if missing."""
    go = shutil.which("go") or "/usr/local/go/bin/go"
    env = {**os.environ, "GOWORK": "off", "GOTOOLCHAIN": "local", "GOFLAGS": "", "GOMODCACHE": str(DEFAULT_MODCACHE)}
    proc = subprocess.run([go, "mod", "download", "-json", f"{module}@{version}"], capture_output=True, text=True,
                          env=env, cwd="/", timeout=timeout)  # fmt: skip
    info = json.loads(proc.stdout or "{}")
    if proc.returncode != 0 or "Dir" not in info:
        raise RuntimeError(f"go mod download {module}@{version}: {info.get('Error') or proc.stderr}")
    return Path(info["Dir"])


def _install(cluster: ClusterInfo, source: tuple[str, str, str, tuple[str, ...]]) -> list[Path]:
    module, version, subdir, names = source
    files = [module_dir(module, version) / subdir / name for name in names]
    for path in files:
        cluster.kubectl("apply", "--server-side", "--force-conflicts", "-f", str(path))
    for path in files:
        cluster.kubectl("wait", "--for=condition=Established", "--timeout=60s", "-f", str(path))
    return files


def install_monitoring_crds(cluster: ClusterInfo) -> list[Path]:
    """Apply the ServiceMonitor, PodMonitor and PrometheusRule CRDs and wait until they are served."""
    return _install(cluster, PROMETHEUS_OPERATOR)


def install_gateway_crds(cluster: ClusterInfo) -> list[Path]:
    """Apply the HTTPRoute CRD and wait until it is served."""
    return _install(cluster, GATEWAY_API)
