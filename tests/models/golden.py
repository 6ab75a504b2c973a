"""Golden detections (boxes as x, y, width, height in image pixels) and IoU matching."""

from __future__ import annotations

import json
from pathlib import Path

from detectflow.detectors.base import Detection

GOLDEN_DIR = Path(__file__).parents[1] / "data" / "golden"


def load_golden(name: str) -> dict:
    """``tests/data/golden/<name>.json``."""
    return json.loads((GOLDEN_DIR / f"{name}.json").read_text())


def iou_xywh(a: list[float], b: list[float]) -> float:
    """IoU of two (x, y, width, height) boxes."""
    ax2, ay2, bx2, by2 = a[0] + a[2], a[1] + a[3], b[0] + b[2], b[1] + b[3]
    iw = max(0.0, min(ax2, bx2) - max(a[0], b[0]))
    ih = max(0.0, min(ay2, by2) - max(a[1], b[1]))
    inter = iw * ih
    union = a[2] * a[3] + b[2] * b[3] - inter
    return inter / union if union > 0 else 0.0


def box_of(det: Detection) -> list[float]:
    return [det.box.x, det.box.y, det.box.width, det.box.height]


def best_iou(expected: dict, detections: list[Detection]) -> float:
    """Highest IoU between ``expected`` ({label, box}) and any detection with the same label."""
    return max((iou_xywh(expected["box"], box_of(d)) for d in detections if d.label == expected["label"]), default=0.0)


def as_golden(detections: list[Detection]) -> list[dict]:
    """Detections in the golden files' form (rounded to 0.1 px)."""
    return [{"label": d.label, "score": round(d.score, 3), "box": [round(v, 1) for v in box_of(d)]} for d in detections]
