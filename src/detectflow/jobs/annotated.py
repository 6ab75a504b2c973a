"""Draw a stored result onto its stored image (the PNG of ``GET /v1/jobs/{id}/annotated``)."""

from __future__ import annotations

from collections.abc import Iterable

import cv2

from detectflow.detectors.base import Box, Detection
from detectflow.jobs import results
from detectflow.jobs.images import decode_image

__all__ = ["render_annotated_png", "detections_from_result"]


def detections_from_result(items: Iterable[results.Detection]) -> list[Detection]:
    """Rebuild the detector's Detection values from a result's detections."""
    return [
        Detection(
            label=d.label,
            score=d.score,
            box=Box(d.box.x, d.box.y, d.box.width, d.box.height),
            landmarks=tuple((p.x, p.y) for p in d.landmarks) if d.landmarks else None,
        )
        for d in items
    ]


def render_annotated_png(
    image_bytes: bytes, detections: Iterable[results.Detection], max_pixels: int | None = None
) -> bytes:
    """The image with ``detections`` drawn, PNG-encoded (decoded with at most ``max_pixels``)."""
    from detectflow.detectors.annotate import annotate

    image = annotate(decode_image(image_bytes, max_pixels), detections_from_result(detections))
    ok, buf = cv2.imencode(".png", image)
    if not ok:  # pragma: no cover - OpenCV always encodes a BGR uint8 array
        raise RuntimeError("PNG encoding failed")
    return buf.tobytes()
