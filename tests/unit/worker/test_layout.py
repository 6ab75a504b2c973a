"""Unit tests of the worker's thread layout."""

from __future__ import annotations

from pathlib import Path

import pytest

from detectflow.worker.layout import DEFAULT_GPU_MAX_BATCH, WorkerLayout, available_cores, choose_layout, choose_max_batch


def test_layout_defaults_to_one_job_per_core_on_one_thread_each():
    assert choose_layout(2) == WorkerLayout(2, 1)
    assert choose_layout(8) == WorkerLayout(8, 1)


def test_layout_shares_the_cores_left_among_the_threads_asked_for():
    assert choose_layout(8, threads=2) == WorkerLayout(2, 4)
    assert choose_layout(2, threads=1) == WorkerLayout(1, 2)
    assert choose_layout(2, threads=4) == WorkerLayout(4, 1)
    assert choose_layout(4, threads=1, intra_op_threads=3) == WorkerLayout(1, 3)


def test_available_cores_follows_the_container_cpu_limit(tmp_path: Path):
    cpu_max = tmp_path / "cpu.max"
    unlimited = available_cores(tmp_path / "absent")
    cpu_max.write_text("150000 100000\n")
    assert available_cores(cpu_max) == min(unlimited, 2)  # 1.5 CPUs: two threads share the quota
    cpu_max.write_text("50000 100000\n")
    assert available_cores(cpu_max) == 1
    cpu_max.write_text("max 100000\n")
    assert available_cores(cpu_max) == unlimited


def test_choose_layout_with_batching_holds_max_batch_jobs_per_core():
    assert choose_layout(2, max_batch=4) == WorkerLayout(8, 1)
    assert choose_layout(2, threads=3, max_batch=4) == WorkerLayout(3, 1)


@pytest.mark.parametrize(("setting", "gpu", "expected"), [(0, False, 1), (0, True, DEFAULT_GPU_MAX_BATCH), (4, False, 4), (1, True, 1)])
def test_choose_max_batch_auto_batches_only_on_gpu(setting, gpu, expected):
    assert choose_max_batch(setting, gpu) == expected
