"""The Detector protocol and the plain values it returns."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Protocol, runtime_checkable

import numpy as np

__all__ = ["Box", "Detection", "ModelInfo", "Detector"]


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
