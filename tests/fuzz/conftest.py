"""Fuzz and overload tier: a real `detectflow api` process, real redis-server and real worker processes."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest

from detectflow.cli.up import RedisServer
from tests.support.processes import AUTH, Proc, cli_env, start_api, start_worker
from tests.support.up import dramatiq_worker_processes

@dataclass
class Platform:
    """One API process and its workers on one Redis prefix, as `detectflow up` runs them."""

    redis: RedisServer
    tmp: Path
    prefix: str = field(default_factory=lambda: f"fuzz{uuid.uuid4().hex[:10]}")
    marker: str = field(default_factory=lambda: uuid.uuid4().hex)
    procs: list[Proc] = field(default_factory=list)
    url: str = ""

    def env(self, **settings: object) -> dict[str, str]:
        env = cli_env(redis_url=self.redis.url, redis_prefix=self.prefix, **settings)
        env["DETECTFLOW_FUZZ_MARKER"] = self.marker  # finds this platform's processes in /proc
        return env

    def start_api(self, **settings: object) -> str:
        proc, self.url = start_api(self.env(**settings), self.tmp / "api.log")
        self.procs.append(proc)
        self.api = proc
        return self.url

    def start_worker(self, task: str, **settings: object) -> Proc:
        def ready() -> bool:
            answer = httpx.get(f"{self.url}/readyz", headers=AUTH, timeout=5).json()
            return bool((answer.get("workers") or {}).get(task))

        log = self.tmp / f"worker-{task}-{len(self.procs)}.log"
        proc = start_worker(self.env(**settings), log, task, wait_ready=ready)
        self.procs.append(proc)
        return proc

    def worker_pids(self) -> list[int]:
        """The live Dramatiq worker processes (the children that run actors) of this platform."""
        return sorted(dramatiq_worker_processes(self.marker))

    def client(self, **kw) -> httpx.Client:
        return httpx.Client(base_url=self.url, headers=kw.pop("headers", AUTH), timeout=kw.pop("timeout", 30), **kw)

    def stop(self) -> None:
        for proc in reversed(self.procs):
            proc.stop()


#: Figures the tier's tests measured, printed at the end of the run (`make test` shows them without -s).
FIGURES: list[str] = []


@pytest.fixture
def figures() -> Callable[[str], None]:
    """``figures(line)`` prints a measured figure now and again in the run's summary."""

    def add(line: str) -> None:
        print(line)
        FIGURES.append(line)

    return add


def pytest_terminal_summary(terminalreporter) -> None:
    if FIGURES:
        terminalreporter.section("fuzz and overload figures")
        for line in FIGURES:
            terminalreporter.write_line(line)


@pytest.fixture(scope="module")
def platform(redis_server: RedisServer, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Platform]:
    """A platform of this module's own (start its API and workers in the test or a module fixture)."""
    p = Platform(redis_server, tmp_path_factory.mktemp("platform"))
    yield p
    p.stop()

