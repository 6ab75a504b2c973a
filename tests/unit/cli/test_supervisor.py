"""The restart policy of `detectflow up` (pure), and the supervisor loop on tiny real processes."""

from __future__ import annotations

import subprocess
import sys

from detectflow.cli.supervisor import Child, RestartPolicy, Supervisor, describe_exit, restart_delay
from tests.support.polling import wait_for

POLICY = RestartPolicy(backoff_seconds=1.0, max_backoff_seconds=5.0, crash_loop_restarts=4, window_seconds=60.0)


def test_restart_delay_doubles_with_each_recent_death_up_to_the_cap():
    assert restart_delay([100.0], 100.0, POLICY) == 1.0
    assert restart_delay([100.0, 101.0], 101.0, POLICY) == 2.0
    assert restart_delay([100.0, 101.0, 103.0], 103.0, POLICY) == 4.0
    capped = RestartPolicy(backoff_seconds=1.0, max_backoff_seconds=3.0, crash_loop_restarts=10, window_seconds=60.0)
    assert restart_delay([1.0, 2.0, 3.0, 4.0, 5.0], 5.0, capped) == 3.0


def test_restart_delay_is_none_at_the_crash_loop_count():
    assert restart_delay([100.0, 101.0, 103.0, 107.0], 107.0, POLICY) is None


def test_restart_delay_forgets_deaths_older_than_the_window():
    # Given four deaths, three of them long ago
    deaths = [0.0, 10.0, 20.0, 200.0]
    # Then only the recent one counts: no crash loop, and the first backoff again
    assert restart_delay(deaths, 200.0, POLICY) == 1.0


def test_describe_exit_names_the_signal_or_the_code():
    assert describe_exit(-9) == "killed by SIGKILL"
    assert describe_exit(-15) == "killed by SIGTERM"
    assert describe_exit(3) == "exit code 3"


def _python(code: str):
    return lambda: subprocess.Popen(
        [sys.executable, "-c", code], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, start_new_session=True
    )


def test_supervisor_restarts_a_dead_child_and_stops_at_a_crash_loop():
    # Given a child that prints a line and exits at once, under a fast policy
    policy = RestartPolicy(backoff_seconds=0.05, max_backoff_seconds=0.2, crash_loop_restarts=3, window_seconds=30.0)
    said: list[str] = []
    child = Child("flaky", _python("import sys; print('model file is missing'); sys.exit(3)"))
    steady = Child("steady", _python("import time; time.sleep(60)"))
    sup = Supervisor([child, steady], policy, said.append)
    sup.start_all()
    first = child.proc.pid
    try:
        # When it keeps dying
        failed = wait_for(sup.poll, 20, 0.02, what="the crash loop")
        # Then it was restarted with backoff, the death logged with its exit code, and it is the one reported
        assert failed is child
        assert child.proc.pid != first and len(child.deaths) == 3
        assert any("flaky" in m and "exit code 3" in m and "restarting in 0.05 s" in m for m in said), said
        assert any("restarting in 0.1 s" in m for m in said), said
        assert child.last_lines() == ["model file is missing"] * 3  # kept across its restarts
        # and the steady child was left alone
        assert steady.proc.poll() is None and steady.deaths == []
    finally:
        sup.stop_all(timeout=5)
    assert steady.proc.returncode == -15


def test_supervisor_kills_what_a_dead_child_leaves_in_its_group(tmp_path):
    # Given a child that starts a long-lived process in its group and is then killed (as a Dramatiq master
    # killed outright leaves its worker process behind)
    pid_file = tmp_path / "orphan.pid"
    code = (
        "import subprocess, sys, time\n"
        "p = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(60)'])\n"
        f"open({str(pid_file)!r}, 'w').write(str(p.pid))\n"
        "time.sleep(60)\n"
    )
    child = Child("master", _python(code))
    sup = Supervisor([child], RestartPolicy(backoff_seconds=30), lambda _: None)
    sup.start_all()
    try:
        wait_for(lambda: pid_file.exists() and pid_file.read_text(), 10, 0.02, what="the orphan")
        orphan = int(pid_file.read_text())
        child.proc.kill()
        child.proc.wait(5)
        # When the supervisor notices the death
        assert sup.poll() is None and child.restart_at is not None
        # Then the orphan is gone too
        wait_for(lambda: not _alive(orphan), 5, 0.02, what="the orphan to be killed")
    finally:
        sup.stop_all(timeout=5)


def _alive(pid: int) -> bool:
    from pathlib import Path

    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def test_supervisor_restarts_a_recycled_child_at_once_without_counting_a_crash(tmp_path):
    # Given a child that exits EXIT_RECYCLED the first time (a recycled worker), then stays up
    from detectflow.cli.supervisor import EXIT_RECYCLED

    flag = tmp_path / "ran"
    code = f"import pathlib, sys, time; p = pathlib.Path({str(flag)!r})\nif not p.exists(): p.touch(); sys.exit({EXIT_RECYCLED})\ntime.sleep(60)"
    said: list[str] = []
    child = Child("worker", _python(code))
    sup = Supervisor([child], POLICY, said.append)
    sup.start_all()
    first = child.proc.pid
    try:
        wait_for(lambda: sup.poll() is None and child.proc.pid != first, 10, 0.02, what="the relaunch")
        # Then it was relaunched with no backoff and no death counted
        assert child.deaths == [] and child.restart_at is None
        assert any("recycled" in m for m in said), said
    finally:
        sup.stop_all(timeout=5)
