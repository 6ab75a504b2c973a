"""A fault-injecting detector for the poison and hang tests: the real model, except on two marker image sizes.

Not part of the default build: a test worker loads it through ``DETECTFLOW_WORKER_DETECTOR_FACTORY``.
"""

from __future__ import annotations

import ctypes
import os
import signal

import cv2
import numpy as np

__all__ = ["CRASH_SIZE", "FLAKY_SIZE", "HANG_SIZE", "HANG_SECONDS", "faulty_detector", "marker_png"]

#: (width, height) of the image that kills the worker process outright (as a segfault or the OOM killer would).
CRASH_SIZE = (61, 67)
#: (width, height) of the image whose inference blocks in native code (libc sleep, the GIL released).
HANG_SIZE = (67, 61)
#: (width, height) of the image whose inference always raises (a transient-looking error: it is retried).
FLAKY_SIZE = (71, 59)
#: How long the hung inference would block, seconds: far beyond any time limit.
HANG_SECONDS = 3600


def marker_png(size: tuple[int, int]) -> bytes:
    """A grey PNG of ``size`` (width, height): a marker the faulty detector reacts to."""
    ok, buf = cv2.imencode(".png", np.full((size[1], size[0], 3), 128, np.uint8))
    assert ok
    return buf.tobytes()


class FaultyDetector:
    """Delegates to the configured model; dies or hangs in C on a marker image."""

    def __init__(self, inner) -> None:
        self.inner = inner
        self.info = inner.info

    def detect(self, image: np.ndarray):
        size = (int(image.shape[1]), int(image.shape[0]))
        if size == CRASH_SIZE:
            os.kill(os.getpid(), signal.SIGKILL)
        if size == HANG_SIZE:
            ctypes.CDLL(None).sleep(HANG_SECONDS)  # native code: Dramatiq's time limit cannot interrupt it
        if size == FLAKY_SIZE:
            raise RuntimeError("injected fault")
        return self.inner.detect(image)

    def warmup(self) -> None:
        self.inner.warmup()


def faulty_detector(task, settings) -> FaultyDetector:
    """The worker's detector factory (``tests.support.faults:faulty_detector``)."""
    from detectflow.detectors.registry import load_detector

    return FaultyDetector(load_detector(task, settings))
