"""YOLOv8 / YOLO11 export layout: one ``[1, 4 + classes, anchors]`` tensor (cx, cy, w, h, class scores)."""

from __future__ import annotations

import numpy as np

from detectflow.detectors.postprocess.nms import batched_nms

__all__ = ["decode_yolo"]


def decode_yolo(
    output: np.ndarray,
    score_threshold: float = 0.25,
    nms_iou: float = 0.45,
    max_det: int = 300,
    num_classes: int | None = None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Objects from a YOLOv8/YOLO11 detection head.

    Parameters
    ----------
    output
        ``[1, 4 + C, A]`` or ``[4 + C, A]`` (the ultralytics export); ``[1, A, 4 + C]`` is also
        accepted when ``num_classes`` is given or A > 4 + C. Boxes are centre x, centre y,
        width, height in input pixels; class scores are probabilities (no objectness).
    score_threshold
        Minimum best-class score.
    nms_iou
        IoU above which the weaker box of the same class is dropped.
    max_det
        Keep at most this many.
    num_classes
        Number of classes, to tell the two layouts apart when both dimensions could fit.

    Returns
    -------
    tuple
        Boxes ``(K, 4)`` xyxy in input pixels, scores ``(K,)`` and class ids ``(K,)``, best first.

    Raises
    ------
    ValueError
        When the output is not of a known layout.
    """
    out = np.asarray(output)
    if out.ndim == 3:
        if out.shape[0] != 1:
            raise ValueError(f"batch of {out.shape[0]}: decode one image at a time")
        out = out[0]
    if out.ndim != 2:
        raise ValueError(f"expected [1, 4 + classes, anchors], got shape {np.asarray(output).shape}")
    if num_classes is not None:
        if out.shape[0] != 4 + num_classes and out.shape[1] == 4 + num_classes:
            out = out.T
    elif out.shape[0] > out.shape[1]:
        out = out.T  # [A, 4 + C]: anchors outnumber channels in every real export
    if out.shape[0] < 5:
        raise ValueError(f"expected at least one class after 4 box rows, got shape {out.shape}")
    cls = out[4:]
    class_ids = cls.argmax(axis=0)
    scores = cls[class_ids, np.arange(cls.shape[1])]
    keep = np.flatnonzero(scores > score_threshold)
    if keep.size == 0:
        return np.zeros((0, 4)), np.zeros(0), np.zeros(0, np.int64)
    cx, cy, w, h = (out[i, keep].astype(np.float64) for i in range(4))
    boxes = np.stack([cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2], axis=1)
    sel = batched_nms(boxes, scores[keep], class_ids[keep], nms_iou, max_det)
    return boxes[sel], scores[keep][sel].astype(np.float64), class_ids[keep][sel].astype(np.int64)
