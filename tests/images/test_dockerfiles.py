"""Dockerfile.api and Dockerfile.worker without a Docker engine: hadolint, and every path and command
they use checked against the repository and run in a plain venv built from their own build context."""

from __future__ import annotations

import fnmatch
import json
import os
import re
import shlex
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from detectflow.config import DEFAULT_CACHE_DIR, Settings

ROOT = Path(__file__).resolve().parents[2]
DOCKERFILES = ("Dockerfile.api", "Dockerfile.worker")
MODEL_DIR = Path(os.environ.get("DETECTFLOW_CACHE", DEFAULT_CACHE_DIR)) / "models"


# --- a small Dockerfile parser -------------------------------------------------------------------


@dataclass
class Instruction:
    cmd: str
    args: str
    line: int


@dataclass
class Stage:
    base: str
    name: str | None
    instructions: list[Instruction] = field(default_factory=list)

    def all(self, cmd: str) -> list[Instruction]:
        return [i for i in self.instructions if i.cmd == cmd]


def parse(path: Path) -> tuple[dict[str, str], list[Stage]]:
    """Global ARGs (name -> default) and the stages of a Dockerfile."""
    logical: list[tuple[int, str]] = []
    buf, start = "", 0
    for n, raw in enumerate(path.read_text().splitlines(), 1):
        if raw.lstrip().startswith("#") and not buf:
            continue
        if raw.lstrip().startswith("#"):
            continue  # comments inside a continued instruction
        if not buf:
            start = n
        if raw.rstrip().endswith("\\"):
            buf += raw.rstrip()[:-1] + " "
            continue
        buf += raw
        if buf.strip():
            logical.append((start, buf.strip()))
        buf = ""
    global_args: dict[str, str] = {}
    stages: list[Stage] = []
    for line, text in logical:
        cmd, _, args = text.partition(" ")
        cmd = cmd.upper()
        if cmd == "FROM":
            m = re.match(r"(?:--platform=\S+\s+)?(\S+)(?:\s+AS\s+(\S+))?", args, re.I)
            assert m, text
            stages.append(Stage(m.group(1), m.group(2)))
        elif not stages:
            assert cmd == "ARG", f"{path.name}:{line}: only ARG may precede FROM"
            name, _, default = args.partition("=")
            global_args[name] = default
        else:
            stages[-1].instructions.append(Instruction(cmd, args.strip(), line))
    return global_args, stages


def _exec_form(instr: Instruction) -> list[str]:
    value = json.loads(instr.args)
    assert isinstance(value, list) and all(isinstance(v, str) for v in value), instr
    return value


def _copy_sources(instr: Instruction) -> tuple[str | None, list[str]]:
    parts = shlex.split(instr.args)
    source_stage = None
    while parts and parts[0].startswith("--"):
        flag = parts.pop(0)
        if flag.startswith("--from="):
            source_stage = flag.split("=", 1)[1]
    return source_stage, parts[:-1]


def _dockerignore_allows(rel: str) -> bool:
    """Docker's .dockerignore semantics for one path: last matching pattern wins, ! re-includes."""
    patterns = [
        p.strip() for p in (ROOT / ".dockerignore").read_text().splitlines() if p.strip() and not p.startswith("#")
    ]
    allowed = True
    parts = rel.split("/")
    candidates = ["/".join(parts[: i + 1]) for i in range(len(parts))]
    for pattern in patterns:
        negate = pattern.startswith("!")
        pat = pattern.lstrip("!").rstrip("/")
        regex = fnmatch.translate(pat).replace(".*", "[^/]*").replace("[^/]*[^/]*", ".*")
        if "**" in pat:
            regex = fnmatch.translate(pat.replace("**/", "\0")).replace("\0", "(.*/)?")
        if any(re.fullmatch(regex, c) for c in candidates):
            allowed = negate
    return allowed


def _detectflow_commands(stages: list[Stage]) -> list[list[str]]:
    """Every `detectflow ...` invocation in the RUN instructions."""
    out = []
    for stage in stages:
        for run in stage.all("RUN"):
            for piece in re.split(r"&&|;|\|\|", run.args):
                if piece.strip().startswith("detectflow "):
                    out.append(shlex.split(piece.replace(">/dev/null", "")))
    return out


# --- fixtures ------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def fresh_venv(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A plain venv with detectflow installed from exactly the build context the Dockerfiles COPY
    (pyproject.toml, README.md, LICENSE, src/ through .dockerignore), as their RUN pip install does."""
    base = tmp_path_factory.mktemp("image")
    context = base / "context"
    context.mkdir()
    for rel in ("pyproject.toml", "README.md", "LICENSE"):
        shutil.copy2(ROOT / rel, context / rel)
    shutil.copytree(ROOT / "src", context / "src", ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"))
    venv = base / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    proc = subprocess.run(
        [str(venv / "bin" / "pip"), "install", "-q", "--disable-pip-version-check", f"{context}[api,worker,operator]"],
        capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-4000:]
    return venv


def _run(venv: Path, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("DETECTFLOW_", "VIRTUAL_ENV"))}
    clean.update({"PATH": f"{venv / 'bin'}:/usr/bin:/bin", "COLUMNS": "200", **env})
    return subprocess.run(list(args), capture_output=True, text=True, env=clean, timeout=120, cwd=venv.parent)


# --- tests ---------------------------------------------------------------------------------------


def test_dockerfiles_pass_hadolint() -> None:
    proc = subprocess.run(["bash", str(ROOT / "scripts" / "lint.sh"), "hadolint"], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr


@pytest.mark.parametrize("name", DOCKERFILES)
def test_dockerfile_is_multistage_and_runs_non_root(name: str) -> None:
    _, stages = parse(ROOT / name)
    assert len(stages) >= 2
    final = stages[-1]
    (user,) = final.all("USER")
    uid = user.args.split(":")[0]
    # Numeric, so the kubelet can verify runAsNonRoot (the operator and chart set it).
    assert uid.isdigit() and int(uid) != 0
    assert uid == "10001"  # the chart's operator.podSecurityContext.runAsUser


@pytest.mark.parametrize("name", DOCKERFILES)
def test_dockerfile_copy_sources_exist_and_pass_dockerignore(name: str) -> None:
    global_args, stages = parse(ROOT / name)
    stage_names = {s.name for s in stages if s.name}
    for stage in stages:
        for copy in stage.all("COPY"):
            source_stage, sources = _copy_sources(copy)
            if source_stage is not None:
                assert source_stage in stage_names, f"{name}:{copy.line}: no stage {source_stage}"
                continue
            for src in sources:
                assert (ROOT / src).exists(), f"{name}:{copy.line}: {src} is not in the repository"
                assert _dockerignore_allows(src.rstrip("/")), f"{name}:{copy.line}: .dockerignore excludes {src}"


def test_dockerignore_keeps_the_context_small() -> None:
    for rel in (".venv", ".git", ".cluster", "tests", "charts", "tools", "bench", "src/detectflow.egg-info"):
        assert not _dockerignore_allows(rel), rel
    assert not _dockerignore_allows("src/detectflow/__pycache__/config.cpython-311.pyc")
    for rel in ("pyproject.toml", "README.md", "src/detectflow/config.py"):
        assert _dockerignore_allows(rel), rel


@pytest.mark.parametrize("name", DOCKERFILES)
def test_dockerfile_base_images_are_pinned(name: str) -> None:
    global_args, stages = parse(ROOT / name)
    names = {s.name for s in stages if s.name}
    for stage in stages:
        base = stage.base
        for arg, default in global_args.items():
            base = base.replace(f"${{{arg}}}", default)
        if base.split("-")[0] in {"runtime"} or base in names:
            continue
        assert re.search(r":[0-9][\w.-]*$", base), f"{name}: base {stage.base} ({base}) has no version tag"


def test_dockerfile_api_entrypoint_runs_the_api_in_exec_form() -> None:
    _, stages = parse(ROOT / "Dockerfile.api")
    final = stages[-1]
    command = _exec_form(final.all("ENTRYPOINT")[-1]) + _exec_form(final.all("CMD")[-1])
    assert command == ["detectflow", "api"]
    assert "8000" in final.all("EXPOSE")[-1].args


def test_dockerfile_worker_entrypoint_execs_the_worker_in_exec_form() -> None:
    global_args, stages = parse(ROOT / "Dockerfile.worker")
    final = stages[-1]
    command = _exec_form(final.all("ENTRYPOINT")[-1]) + _exec_form(final.all("CMD")[-1])
    assert command == ["detectflow", "worker", "--task", "face"]
    # The runtime stage picks its base by the DEVICE build arg: CPU or CUDA.
    assert final.base == "runtime-${DEVICE}" and global_args["DEVICE"] == "cpu"
    bases = {s.name: s.base for s in stages}
    assert bases["runtime-cpu"] == "${PYTHON_IMAGE}" and bases["runtime-gpu"] == "${CUDA_IMAGE}"
    assert "cudnn" in global_args["CUDA_IMAGE"]
    build = next(s for s in stages if s.name == "build")
    assert any("onnxruntime-gpu==" in r.args for r in build.all("RUN"))
    # The models come from the build stage that ran `detectflow models build`, not from the context.
    assert any(c.args.startswith("--from=models /models") for c in final.all("COPY"))


@pytest.mark.parametrize("name", DOCKERFILES)
def test_dockerfile_env_is_valid_settings(name: str) -> None:
    _, stages = parse(ROOT / name)
    env: dict[str, str] = {}
    for instr in stages[-1].all("ENV"):
        for pair in shlex.split(instr.args):
            key, _, value = pair.partition("=")
            env[key] = value.replace("${DEVICE}", "gpu")
    ours = {k.removeprefix("DETECTFLOW_").lower(): v for k, v in env.items() if k.startswith("DETECTFLOW_")}
    assert ours, "the image sets no DETECTFLOW_* default"
    assert set(ours) <= set(Settings.model_fields), set(ours) - set(Settings.model_fields)
    Settings(**ours)  # every value validates


def test_dockerfile_detectflow_commands_work_in_a_fresh_venv(fresh_venv: Path) -> None:
    # Every `detectflow ...` the Dockerfiles RUN: its (sub)command and options exist...
    commands = [c for name in DOCKERFILES for c in _detectflow_commands(parse(ROOT / name)[1])]
    assert ["detectflow", "models", "build", "--model-dir", "/models"] in commands
    for words in commands:
        sub = [w for w in words[1:] if not w.startswith("-")][:2]
        sub = [w for w in sub if w in {"models", "build", "list", "operator"}]
        proc = _run(fresh_venv, "detectflow", *sub, "--help")
        assert proc.returncode == 0, f"{' '.join(words)}: {proc.stderr}"
        for flag in (w for w in words if w.startswith("--")):
            assert flag.split("=")[0] in proc.stdout, f"{' '.join(words)}: no {flag} in `detectflow {' '.join(sub)} --help`"
    # ...and the cheap ones really run (models list over the models `make models` built).
    assert _run(fresh_venv, "detectflow", "--help").returncode == 0
    assert _run(fresh_venv, "detectflow", "operator", "--help").returncode == 0
    listed = _run(fresh_venv, "detectflow", "models", "list", "--model-dir", str(MODEL_DIR))
    assert listed.returncode == 0, listed.stdout + listed.stderr
    assert "retinaface-mnet025" in listed.stdout and "nanodet-g" in listed.stdout


@pytest.mark.redis
@pytest.mark.models
def test_dockerfile_worker_cmd_makes_dramatiq_pid_of_the_container_and_stops_on_sigterm(
    fresh_venv: Path, redis_server, prefix: str, tmp_path: Path
) -> None:
    # Given the worker image's command, run from the fresh venv as the container would run it
    _, stages = parse(ROOT / "Dockerfile.worker")
    final = stages[-1]
    command = _exec_form(final.all("ENTRYPOINT")[-1]) + _exec_form(final.all("CMD")[-1])
    env = {k: v for k, v in os.environ.items() if not k.startswith("DETECTFLOW_")}
    env.update(PATH=f"{fresh_venv / 'bin'}:/usr/bin:/bin", DETECTFLOW_REDIS_URL=redis_server.url,
               DETECTFLOW_REDIS_PREFIX=prefix, DETECTFLOW_MODEL_DIR=str(MODEL_DIR), DETECTFLOW_DEVICE="cpu")  # fmt: skip
    log = (tmp_path / "worker.log").open("wb")
    proc = subprocess.Popen(command, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        # Then the same PID becomes dramatiq (execve, no wrapper left to swallow signals)
        deadline = time.monotonic() + 30
        cmdline = ""
        while time.monotonic() < deadline and "dramatiq" not in cmdline:
            cmdline = Path(f"/proc/{proc.pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
            time.sleep(0.1)
        assert "-m dramatiq detectflow.worker.main" in cmdline and "--queues detect.face" in cmdline
        time.sleep(3)  # let it load the model and start its consumers
        assert proc.poll() is None, (tmp_path / "worker.log").read_text()[-3000:]
        # When the kubelet's SIGTERM reaches that PID / Then dramatiq shuts down cleanly
        t0 = time.monotonic()
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=60) == 0, (tmp_path / "worker.log").read_text()[-3000:]
        print(f"worker stopped {time.monotonic() - t0:.1f} s after SIGTERM")
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
        log.close()
