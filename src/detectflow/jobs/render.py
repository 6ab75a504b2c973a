"""Draw a stored result onto its stored image."""

from __future__ import annotations

from typing import Any

import cv2

from detectflow.detectors.base import Box, Detection
from detectflow.jobs.images import decode_image

__all__ = ["render_annotated_png", "detections_from_result"]


def detections_from_result(items: list[dict[str, Any]]) -> list[Detection]:
    """Rebuild Detection values from a result's JSON detections."""
    out = []
    for d in items:
        lm = d.get("landmarks")
        out.append(
            Detection(
                label=d["label"],
                score=float(d["score"]),
                box=Box(**d["box"]),
                landmarks=tuple((p["x"], p["y"]) for p in lm) if lm else None,
            )
        )
    return out


def render_annotated_png(image_bytes: bytes, detections: list[dict[str, Any]]) -> bytes:
    from detectflow.detectors.annotate import annotate

    image = annotate(decode_image(image_bytes), detections_from_result(detections))
    ok, buf = cv2.imencode(".png", image)
    if not ok:  # pragma: no cover - OpenCV always encodes a BGR uint8 array
        raise RuntimeError("PNG encoding failed")
    return buf.tobytes()
