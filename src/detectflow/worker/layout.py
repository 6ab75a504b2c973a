"""How a worker process uses its cores: job threads and onnxruntime intra-op threads, chosen from the cores it may use."""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from pathlib import Path

__all__ = ["WorkerLayout", "available_cores", "choose_layout", "choose_max_batch", "DEFAULT_GPU_MAX_BATCH"]

#: cgroup v2's CPU limit of this process's container ("<quota> <period>" or "max <period>").
CGROUP_CPU_MAX = Path("/sys/fs/cgroup/cpu.max")

#: Batch size ``worker_max_batch=0`` (auto) chooses on a GPU, inputs.
DEFAULT_GPU_MAX_BATCH = 8


@dataclass(frozen=True, slots=True)
class WorkerLayout:
    """``threads`` jobs at once, each model run on ``intra_op_threads`` threads."""

    threads: int
    intra_op_threads: int


def available_cores(cpu_max: Path = CGROUP_CPU_MAX) -> int:
    """Cores this process may use: the container's CPU limit (cgroup v2) if any, else its CPU affinity.

    A limit of 1.5 CPUs counts as 2 (the threads then share the quota).
    """
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    try:
        quota, period = cpu_max.read_text().split()
        if quota != "max":
            cores = min(cores, max(1, math.ceil(int(quota) / int(period))))
    except (OSError, ValueError):
        pass
    return max(1, cores)


def choose_layout(cores: int, threads: int = 0, intra_op_threads: int = 0, max_batch: int = 1) -> WorkerLayout:
    """The layout for ``cores``, honouring explicit settings (0: choose).

    On CPU a session runs fastest per core with one intra-op thread, so the default runs one job
    per core, each on one thread (measured: 2 x 1 gives 1.36x the images/s of 1 x 2 for RetinaFace
    on 2 cores; docs/performance.md). With ``threads`` given, the cores left are shared out as
    intra-op threads. With dynamic batching (``max_batch`` above 1) the default holds ``max_batch``
    jobs per core, so batches can fill, and the sessions keep one intra-op thread (one batch runner per core).
    """
    if max_batch > 1 and not threads:
        return WorkerLayout(cores * max_batch, intra_op_threads or 1)
    threads = threads or cores
    intra = intra_op_threads or max(1, cores // threads)
    return WorkerLayout(threads, intra)


def choose_max_batch(setting: int, gpu: bool) -> int:
    """The batch size a worker uses: ``setting`` when given (1 = off), else auto.

    Auto batches on a GPU, where one run of 8 costs little more than one of 1, and not on CPU, where
    a single-threaded session per core already keeps every core busy and batching measured no gain
    (bench/batching.py; docs/performance.md).
    """
    if setting:
        return setting
    return DEFAULT_GPU_MAX_BATCH if gpu else 1
