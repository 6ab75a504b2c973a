"""Turn a task's configured model (built-in name, ONNX path, or ``postprocessor:path``) into a Detector."""

from __future__ import annotations

import logging
from pathlib import Path

from detectflow.config import Settings, Task
from detectflow.detectors._common import model_info
from detectflow.detectors.base import Detector, ModelInfo
from detectflow.detectors.batching import MicroBatcher
from detectflow.detectors.onnx_embed import OnnxFaceEmbedder
from detectflow.detectors.onnx_face import OnnxFaceDetector
from detectflow.detectors.onnx_object import OnnxObjectDetector
from detectflow.detectors.runtime import choose_providers, create_session, session_provider
from detectflow.models.cards import ModelCard, ModelFile, card_path_for, load_card
from detectflow.models.sources import sha256_file
from detectflow.worker.layout import available_cores, choose_max_batch

__all__ = ["ModelNotFoundError", "choose_variant", "load_detector", "load_embedder", "resolve_model"]

log = logging.getLogger(__name__)

_POSTPROCESSORS = ("retinaface", "nanodet", "yolo")


class ModelNotFoundError(FileNotFoundError):
    """The configured model (or its card) is not on disk."""


def resolve_model(spec: str, model_dir: Path) -> tuple[ModelCard, Path]:
    """The card of a configured model and the directory its file paths are relative to.

    Parameters
    ----------
    spec
        A built-in name (``retinaface-mnet025``: its card ``<name>.json`` in ``model_dir``), a path
        to an ``.onnx`` file with its card beside it (``model.json`` or ``model.onnx.json``), or
        ``<postprocessor>:<path.onnx>`` (``yolo``, ``nanodet``, ``retinaface``) for a file without a card.
    model_dir
        Directory of the built-in models.

    Raises
    ------
    ModelNotFoundError
        When the file or card is missing.
    """
    prefix, sep, rest = spec.partition(":")
    if sep and prefix in _POSTPROCESSORS:
        path = Path(rest).expanduser()
        if not path.is_file():
            raise ModelNotFoundError(f"model file {path} not found")
        card_file = card_path_for(path)
        if card_file is not None:
            card = load_card(card_file)
            card = card.model_copy(update={"postprocessor": prefix})
        else:
            card = ModelCard(name=path.stem, postprocessor=prefix)
            if prefix == "retinaface":
                card = ModelCard(name=path.stem, postprocessor=prefix, labels=["face"],
                                 preprocessing={"resize": "none", "max_side": 1024, "mean": (104, 117, 123),
                                                "std": (1, 1, 1)})
        return _with_default_file(card, path), path.parent
    if spec.endswith(".onnx") or "/" in spec:
        path = Path(spec).expanduser()
        if not path.is_file():
            raise ModelNotFoundError(f"model file {path} not found")
        card_file = card_path_for(path)
        if card_file is None:
            raise ModelNotFoundError(
                f"no model card beside {path} (expected {path.with_suffix('.json').name}); write one, "
                f"or name the postprocessor: 'yolo:{path}'"
            )
        return _with_default_file(load_card(card_file), path), path.parent
    card_file = Path(model_dir).expanduser() / f"{spec}.json"
    if not card_file.is_file():
        raise ModelNotFoundError(
            f"model {spec!r} is not built in {card_file.parent}: run `detectflow models build`"
        )
    return load_card(card_file), card_file.parent


def _with_default_file(card: ModelCard, path: Path) -> ModelCard:
    if "cpu" in card.files:
        return card
    return card.model_copy(update={"files": {"cpu": ModelFile(path=path.name)}})


def choose_variant(card: ModelCard, gpu: bool, cpu_precision: str = "auto") -> str:
    """Which of the card's files to open: ``gpu``, ``cpu_int8`` or ``cpu``.

    Parameters
    ----------
    card
        The model card.
    gpu
        Whether a GPU provider is in use.
    cpu_precision
        ``auto``: int8 where the card marks it as the CPU default (its accuracy report passed);
        ``int8``: int8 whenever the card has the file; ``fp32``: never int8.
    """
    if gpu and "gpu" in card.files:
        return "gpu"
    if "cpu_int8" in card.files and (
        cpu_precision == "int8" or (cpu_precision == "auto" and card.cpu_precision == "int8")
    ):
        return "cpu_int8"
    return "cpu"


def load_detector(task: Task, settings: Settings) -> Detector:
    """The detector configured for ``task``, with one onnxruntime session.

    Picks the card's GPU variant when a CUDA (or TensorRT) provider is available and
    ``settings.device`` is not ``cpu``; otherwise the CPU file that ``settings.cpu_precision``
    and the card choose (:func:`choose_variant`).

    Parameters
    ----------
    task
        Face or object.
    settings
        ``model_dir``, ``<task>_model``, ``device``, ``intra_op_threads`` and thresholds are used.

    Raises
    ------
    ModelNotFoundError
        When the model is not built or the file is missing (the message says what to run).
    """
    task = Task(task)
    card, base = resolve_model(settings.model_for(task), settings.model_dir)
    if card.postprocessor == "embedding":
        raise ValueError(f"{card.name} is an embedder, not a {task.value} detector: set it as embed_model")
    session, info = _open_best(card, base, settings, task.value)
    threshold = settings.score_threshold_for(task)
    if card.postprocessor == "retinaface":
        detector = OnnxFaceDetector(session, card, info, threshold, task=task.value)
    else:
        detector = OnnxObjectDetector(session, card, info, threshold, task=task.value)
    batch_through(detector, card.name, info, settings)
    return detector


def load_embedder(settings: Settings) -> OnnxFaceEmbedder:
    """The face embedder configured by ``settings.embed_model``, with one onnxruntime session.

    Picks the variant like :func:`load_detector` (an embedder card without a ``cpu_int8`` file always runs
    its fp32 CPU file on CPU, whatever ``settings.cpu_precision`` says).

    Parameters
    ----------
    settings
        ``model_dir``, ``embed_model``, ``device``, ``cpu_precision`` and ``intra_op_threads`` are used.

    Raises
    ------
    ModelNotFoundError
        When the model is not built or the file is missing.
    ValueError
        When the configured card is not an embedder's (postprocessor ``embedding``).
    """
    card, base = resolve_model(settings.embed_model, settings.model_dir)
    if card.postprocessor != "embedding":
        raise ValueError(f"{card.name}: embed_model needs a card with postprocessor 'embedding'")
    session, info = _open_best(card, base, settings, "embed")
    embedder = OnnxFaceEmbedder(session, card, info)
    batch_through(embedder, card.name, info, settings)
    return embedder


def batch_through(model, name: str, info: ModelInfo, settings: Settings) -> None:
    """Route ``model.run_one`` through a :class:`MicroBatcher` when the worker batches (``worker_max_batch``).

    One batch at a time on a GPU; on CPU one per core, each on its single-threaded session. ``model``
    keeps its own ``infer`` for callers that already hold a batch (a video's frames).
    """
    gpu = info.provider != "CPUExecutionProvider"
    max_batch = choose_max_batch(settings.worker_max_batch, gpu)
    if max_batch <= 1:
        return
    runners = 1 if gpu else max(1, available_cores() // max(1, settings.intra_op_threads))
    model.max_batch = max_batch
    model.run_one = MicroBatcher(model.infer, max_batch, settings.worker_max_batch_delay_ms, runners)
    log.info("%s: dynamic batching up to %d inputs, %.1f ms, %d runner(s)", name, max_batch,
             settings.worker_max_batch_delay_ms, runners)


def _open_best(card: ModelCard, base: Path, settings: Settings, what: str):
    """Session on the file :func:`choose_variant` picks (its CPU choice again when the GPU provider fails)."""
    providers = choose_providers(settings.device)
    want_gpu = providers[0] != "CPUExecutionProvider"
    variant = choose_variant(card, want_gpu, settings.cpu_precision)
    session, path = _open(card, base, variant, providers, settings.intra_op_threads)
    provider = session_provider(session)
    if variant == "gpu" and provider == "CPUExecutionProvider":
        variant = choose_variant(card, False, settings.cpu_precision)
        log.warning("%s: GPU provider failed to start; falling back to CPUExecutionProvider with the %s file",
                    card.name, card.files[variant].precision)
        session, path = _open(card, base, variant, ["CPUExecutionProvider"], settings.intra_op_threads)
        provider = session_provider(session)
    sha = card.files[variant].sha256 or sha256_file(path)
    info = model_info(card, sha, provider, variant)
    log.info("%s model %s %s (%s, %s) on %s", what, card.name, card.version, path, info.precision, provider)
    return session, info


def _open(card: ModelCard, base: Path, variant: str, providers: list[str], threads: int):
    path = base / card.files[variant].path
    if not path.is_file():
        raise ModelNotFoundError(f"{card.name}: {path} missing: run `detectflow models build`")
    return create_session(path, providers, threads), path
