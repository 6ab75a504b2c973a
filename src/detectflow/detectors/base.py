"""The Detector protocol and the plain values it returns."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Protocol, runtime_checkable

import numpy as np

__all__ = ["Box", "Detection", "ModelInfo", "Detector", "StagedDetector"]


@dataclass(frozen=True, slots=True)
class Box:
    """An axis-aligned box in pixels of the uploaded image (top-left corner, size)."""

    x: float
    y: float
    width: float
    height: float


@dataclass(frozen=True, slots=True)
class Detection:
    """One detected thing: label, confidence, box, and for faces five landmarks (x, y)."""

    label: str
    score: float
    box: Box
    landmarks: tuple[tuple[float, float], ...] | None = None

    def to_dict(self) -> dict:
        """JSON-ready form used in job results."""
        d = asdict(self)
        if self.landmarks is None:
            d.pop("landmarks")
        else:
            d["landmarks"] = [{"x": x, "y": y} for x, y in self.landmarks]
        return d


@dataclass(frozen=True, slots=True)
class ModelInfo:
    """What a result reports about the model that produced it."""

    name: str
    version: str
    sha256: str
    provider: str = "CPUExecutionProvider"
    extra: dict = field(default_factory=dict)
    precision: str = "fp32"  # of the file in use: fp32, fp16 or int8

    def to_dict(self) -> dict:
        return {"name": self.name, "version": self.version, "sha256": self.sha256, "provider": self.provider,
                "precision": self.precision}


@runtime_checkable
class Detector(Protocol):
    """Finds things in one BGR ``uint8`` image of shape (H, W, 3)."""

    task: str
    info: ModelInfo

    def detect(self, image: np.ndarray) -> list[Detection]:
        """Detections in pixels of ``image``, best score first."""
        ...

    def detect_batch(self, images: list[np.ndarray]) -> list[list[Detection]]:
        """:meth:`detect` of each image, through the model in as few runs as their sizes allow."""
        ...

    def warmup(self) -> None:
        """Run once on a dummy input so the first real job pays no start-up cost."""
        ...


class StagedDetector:
    """A detector in three stages (prepare, infer, finish), so inputs of several images or jobs can share runs.

    Subclasses define :meth:`prepare` (image -> input with a leading axis of 1, and whatever ``finish``
    needs to map back), :meth:`infer` (stacked inputs -> outputs, leading axis kept) and :meth:`finish`
    (one input's outputs -> detections). ``run_one`` runs one input: :meth:`infer` itself, or a
    :class:`~detectflow.detectors.batching.MicroBatcher` over it that batches concurrent jobs.
    """

    def __init__(self) -> None:
        self.run_one = self.infer
        #: Inputs per model run callers with many inputs at hand (a video's frames) should group.
        self.max_batch = 1

    def prepare(self, image: np.ndarray) -> tuple[np.ndarray, object]:
        raise NotImplementedError

    def infer(self, x: np.ndarray) -> list[np.ndarray]:
        raise NotImplementedError

    def finish(self, outputs: list[np.ndarray], x_shape: tuple[int, ...], state: object) -> list[Detection]:
        raise NotImplementedError

    def last_batch(self) -> int:
        """Inputs in the model run of this thread's last :meth:`detect` (1 without a batcher)."""
        last = getattr(self.run_one, "last_batch", None)
        return last() if last is not None else 1

    def detect(self, image: np.ndarray) -> list[Detection]:
        """Detections in pixels of ``image`` (BGR uint8), best score first."""
        x, state = self.prepare(image)
        return self.finish(self.run_one(x), x.shape, state)

    def detect_batch(self, images: list[np.ndarray]) -> list[list[Detection]]:
        """:meth:`detect` of each image, same-size inputs through the model in one run."""
        from detectflow.detectors.batching import run_batched

        prepared = [self.prepare(im) for im in images]
        outs = run_batched(self.infer, [x for x, _ in prepared])
        return [self.finish(o, x.shape, state) for o, (x, state) in zip(outs, prepared)]
