"""Per-process worker state: settings, store, the kind served, the detector (loaded once, before consuming)."""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from typing import Any

from detectflow.config import Settings
from detectflow.detectors.base import Detector
from detectflow.jobs.kinds import JobKind
from detectflow.jobs.stores.redis import RedisJobStore
from detectflow.worker.tasks.base import Outcome

__all__ = ["WorkerContext"]


@dataclass
class WorkerContext:
    settings: Settings
    store: RedisJobStore
    kind: JobKind
    detector: Detector | None = None
    worker_id: str = ""
    #: The actor that runs one segment of a video job (declared by actors.declare_segment_actor).
    segment_actor: Any = None
    #: Per worker thread: the outcome the actor hands to the JobLifecycle middleware.
    #: (Returning it would make Dramatiq warn that no Results backend keeps it.)
    _local: threading.local = field(default_factory=threading.local)

    def hand_over(self, outcome: Outcome) -> None:
        self._local.outcome = outcome

    def take_outcome(self) -> Outcome | None:
        outcome, self._local.outcome = getattr(self._local, "outcome", None), None
        return outcome

    def require_detector(self) -> Detector:
        if self.detector is None:
            raise RuntimeError("the detector is not loaded: the worker has not booted")
        return self.detector
