"""A deterministic detector for fast unit tests of the job machinery."""

from __future__ import annotations

import numpy as np

from detectflow.detectors.base import Box, Detection, ModelInfo

__all__ = ["FakeDetector"]


class FakeDetector:
    """Reports one box covering the centre quarter of every image."""

    def __init__(self, task: str = "face", label: str = "face") -> None:
        self.task = task
        self.label = label
        self.info = ModelInfo(name="fake", version="0", sha256="0" * 64, provider="none")
        self.calls = 0

    def detect(self, image: np.ndarray) -> list[Detection]:
        self.calls += 1
        h, w = image.shape[:2]
        return [Detection(self.label, 0.99, Box(w / 4, h / 4, w / 2, h / 2))]

    def warmup(self) -> None:
        self.detect(np.zeros((32, 32, 3), np.uint8))
