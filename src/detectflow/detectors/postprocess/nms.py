"""Greedy non-maximum suppression on ``(x1, y1, x2, y2)`` boxes."""

from __future__ import annotations

import numpy as np

__all__ = ["iou", "nms", "batched_nms"]


def iou(box: np.ndarray, boxes: np.ndarray) -> np.ndarray:
    """Intersection over union of one ``(4,)`` box with each of ``(N, 4)`` boxes (xyxy)."""
    boxes = np.asarray(boxes, np.float64).reshape(-1, 4)
    x1 = np.maximum(box[0], boxes[:, 0])
    y1 = np.maximum(box[1], boxes[:, 1])
    x2 = np.minimum(box[2], boxes[:, 2])
    y2 = np.minimum(box[3], boxes[:, 3])
    inter = np.clip(x2 - x1, 0, None) * np.clip(y2 - y1, 0, None)
    area = (box[2] - box[0]) * (box[3] - box[1])
    areas = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])
    union = area + areas - inter
    return np.where(union > 0, inter / np.where(union > 0, union, 1), 0.0)


def nms(boxes: np.ndarray, scores: np.ndarray, iou_threshold: float, max_det: int | None = None) -> np.ndarray:
    """Indices of the boxes kept by greedy NMS, best score first.

    Parameters
    ----------
    boxes
        ``(N, 4)`` boxes as x1, y1, x2, y2.
    scores
        ``(N,)`` scores.
    iou_threshold
        A box is dropped when its IoU with a kept, better box is above this.
    max_det
        Keep at most this many.

    Returns
    -------
    numpy.ndarray
        ``int64`` indices into ``boxes``.
    """
    boxes = np.asarray(boxes, np.float64).reshape(-1, 4)
    order = np.argsort(-np.asarray(scores), kind="stable")
    keep: list[int] = []
    while order.size:
        i = int(order[0])
        keep.append(i)
        if max_det is not None and len(keep) >= max_det:
            break
        rest = order[1:]
        order = rest[iou(boxes[i], boxes[rest]) <= iou_threshold]
    return np.asarray(keep, np.int64)


def batched_nms(
    boxes: np.ndarray,
    scores: np.ndarray,
    class_ids: np.ndarray,
    iou_threshold: float,
    max_det: int | None = None,
) -> np.ndarray:
    """NMS within each class only (boxes of different classes never suppress each other).

    Returns
    -------
    numpy.ndarray
        Indices of the kept boxes, best score first.
    """
    boxes = np.asarray(boxes, np.float64).reshape(-1, 4)
    if boxes.size == 0:
        return np.zeros(0, np.int64)
    # Shift each class to its own region so one NMS pass never mixes classes.
    offset = np.asarray(class_ids, np.float64)[:, None] * (boxes.max() - boxes.min() + 1.0)
    return nms(boxes + offset, scores, iou_threshold, max_det)
