"""Per-process worker state: settings, store, detector (loaded once, before consuming)."""

from __future__ import annotations

from dataclasses import dataclass, field

from detectflow.config import Settings
from detectflow.detectors.base import Detector
from detectflow.jobs.store import RedisJobStore

__all__ = ["WorkerContext"]


@dataclass
class WorkerContext:
    settings: Settings
    store: RedisJobStore
    detector: Detector | None = None
    worker_id: str = ""
    extra: dict = field(default_factory=dict)

    def require_detector(self) -> Detector:
        if self.detector is None:
            raise RuntimeError("the detector is not loaded: the worker has not booted")
        return self.detector
