"""The base install (`pip install detectflow`) is the client and the CLI's client commands, with no server parts."""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

from detectflow.config import DEFAULT_CACHE_DIR

ROOT = Path(__file__).resolve().parents[2]

#: Modules of the server extras that the base install must not bring.
SERVER_MODULES = ("onnxruntime", "cv2", "dramatiq", "fastapi", "redis", "uvicorn", "kopf", "kubernetes", "numpy")

pytestmark = pytest.mark.slow


def _base_deps() -> list[str]:
    return tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]


def _pip(venv: Path, *args: str) -> None:
    proc = subprocess.run([str(venv / "bin" / "python"), "-m", "pip", "install", "-q", "--disable-pip-version-check",
                           *args], capture_output=True, text=True, timeout=600)  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-4000:]


@pytest.fixture(scope="module")
def base_venv(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A venv with the base dependencies only (cached by their list), and this checkout installed into it fresh."""
    deps = _base_deps()
    digest = hashlib.sha256("\n".join([sys.version, *deps]).encode()).hexdigest()[:16]
    venv = DEFAULT_CACHE_DIR / "venvs" / f"base-{digest}"
    if not (venv / ".ready").exists():
        shutil.rmtree(venv, ignore_errors=True)
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
        _pip(venv, "setuptools>=77", "wheel", *deps)
        (venv / ".ready").touch()
    # the project itself from a copy of the sources (no egg-info or caches), its dependencies already there;
    # --no-deps would hide a missing base dependency, so pip resolves them (all satisfied: nothing is fetched)
    src = tmp_path_factory.mktemp("context")
    for rel in ("pyproject.toml", "README.md", "LICENSE"):
        if (ROOT / rel).exists():
            shutil.copy2(ROOT / rel, src / rel)
    shutil.copytree(ROOT / "src", src / "src", ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"))
    _pip(venv, "--no-build-isolation", "--force-reinstall", "--no-deps", str(src))
    _pip(venv, "--no-build-isolation", str(src))  # checks the declared dependencies are met by the base ones
    return venv


def _run(venv: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DETECTFLOW_", "VIRTUAL_ENV", "PYTHON"))}
    env.update({"PATH": f"{venv / 'bin'}:/usr/bin:/bin", "COLUMNS": "80"})
    return subprocess.run(list(args), capture_output=True, text=True, env=env, timeout=120, cwd=venv)


def test_base_install_has_no_server_modules(base_venv: Path):
    code = "import importlib.util as u; print(' '.join(m for m in %r if u.find_spec(m)))" % (SERVER_MODULES,)
    proc = _run(base_venv, str(base_venv / "bin" / "python"), "-c", code)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == ""


def test_base_install_imports_and_uses_the_client(base_venv: Path):
    # Given nothing listening on the port, the client still builds its typed calls and reports the failure
    code = """
import detectflow, detectflow.client as c
from detectflow.client import Client, AsyncClient, RetryPolicy, TransportFailed
from detectflow.jobs.records import JobPublic
from detectflow.galleries.records import Gallery, GalleryExport, MatchResponse
from detectflow.api.schemas import UploadPublic
with Client("http://127.0.0.1:9", "k", retry=RetryPolicy(max_attempts=2, backoff_base=0)) as client:
    try:
        client.health()
    except TransportFailed as exc:
        print("transport-failed", detectflow.__version__)
"""
    proc = _run(base_venv, str(base_venv / "bin" / "python"), "-c", code)
    assert proc.returncode == 0, proc.stderr
    version = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["version"]
    assert proc.stdout.split() == ["transport-failed", version]


def test_base_install_cli_client_commands(base_venv: Path):
    exe = str(base_venv / "bin" / "detectflow")
    version = _run(base_venv, exe, "--version")
    assert version.returncode == 0 and version.stdout.startswith("detectflow "), version.stderr
    for group in ("jobs", "keys", "detect", "galleries"):
        proc = _run(base_venv, exe, group, "--help")
        assert proc.returncode == 0, proc.stderr
        assert "Usage" in proc.stdout


@pytest.mark.parametrize(
    ("args", "extra"),
    [(["operator", "run"], "operator"), (["operator"], "operator"), (["api"], "api"), (["worker"], "worker"),
     (["up"], "api,worker"), (["models", "build"], "build")],
)  # fmt: skip
def test_base_install_server_commands_name_their_extra(base_venv: Path, args: list[str], extra: str):
    proc = _run(base_venv, str(base_venv / "bin" / "detectflow"), *args)
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert f"pip install 'detectflow[{extra}]'" in proc.stderr
    assert "Traceback" not in proc.stderr
