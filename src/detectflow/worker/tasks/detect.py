"""Detection jobs (face, object): decode the image, run the pool's detector, report boxes and timings."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

from detectflow.jobs.images import decode_image
from detectflow.jobs.records import utcnow
from detectflow.jobs.results import DetectionResult, DetectionTimings, ImageSize, ModelRef
from detectflow.worker.tasks.base import Outcome

if TYPE_CHECKING:
    from detectflow.jobs.records import JobRecord
    from detectflow.worker.context import WorkerContext
__all__ = ["run_detect"]


def run_detect(ctx: WorkerContext, job: JobRecord, data: bytes) -> Outcome:
    """Detect the objects of the worker's kind in one image."""
    image = decode_image(data, ctx.settings.api_max_image_pixels)  # the header the API read may lie
    detector = ctx.require_detector()
    t0 = time.perf_counter()
    detections = detector.detect(image)
    inference_s = time.perf_counter() - t0
    now = utcnow()
    started = job.started_at or now
    result = DetectionResult(
        image=ImageSize(width=int(image.shape[1]), height=int(image.shape[0])),
        detections=[d.to_dict() for d in detections],
        model=ModelRef(**detector.info.to_dict()),
        timings_ms=DetectionTimings(
            queued=round((started - job.created_at).total_seconds() * 1000, 3),
            inference=round(inference_s * 1000, 3),
            total=round((now - job.created_at).total_seconds() * 1000, 3),
        ),
    )
    batch = detector.last_batch() if hasattr(detector, "last_batch") else 1
    return Outcome(
        result, inference_s, f"{len(detections)} detections", (started - job.created_at).total_seconds(), batch
    )
