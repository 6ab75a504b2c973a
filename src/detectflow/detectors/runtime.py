"""onnxruntime sessions: execution-provider choice, threads, and the provider actually in use."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Literal

__all__ = ["choose_providers", "create_session", "session_provider"]

log = logging.getLogger(__name__)

_CPU = "CPUExecutionProvider"
_CUDA = "CUDAExecutionProvider"
_TRT = "TensorrtExecutionProvider"


def choose_providers(device: Literal["auto", "cpu", "gpu"], available: list[str] | None = None) -> list[str]:
    """Execution providers to try, best first: TensorRT and CUDA when present (unless ``cpu``), then CPU.

    Parameters
    ----------
    device
        ``auto`` uses a GPU when onnxruntime has one; ``gpu`` asks for it (falls back to CPU with
        a warning); ``cpu`` never uses one.
    available
        onnxruntime's available providers (queried when None).
    """
    if available is None:
        import onnxruntime as ort

        available = ort.get_available_providers()
    if device == "cpu":
        return [_CPU]
    gpu = [p for p in (_TRT, _CUDA) if p in available]
    if not gpu:
        msg = "no CUDA execution provider in onnxruntime (available: %s); falling back to CPUExecutionProvider"
        (log.warning if device == "gpu" else log.info)(msg, ", ".join(available))
        return [_CPU]
    return [*gpu, _CPU]


def create_session(path: Path, providers: list[str], intra_op_threads: int = 0):
    """One onnxruntime InferenceSession on ``path`` with all graph optimizations.

    Parameters
    ----------
    path
        ONNX file.
    providers
        From :func:`choose_providers`.
    intra_op_threads
        Threads per operator; 0 lets onnxruntime decide.
    """
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    opts.intra_op_num_threads = intra_op_threads
    opts.inter_op_num_threads = 1
    opts.log_severity_level = 3
    return ort.InferenceSession(str(path), opts, providers=providers)


def session_provider(session) -> str:
    """The execution provider running the session's nodes first in line (e.g. ``CUDAExecutionProvider``)."""
    return session.get_providers()[0]
