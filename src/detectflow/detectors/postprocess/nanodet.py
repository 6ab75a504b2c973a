"""NanoDet (GFL): per-class sigmoid scores and distance distributions (DFL) per cell."""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from detectflow.detectors.postprocess.nms import batched_nms

__all__ = ["distribution_to_distance", "nanodet_centres", "decode_nanodet"]

#: Feature strides of NanoDet's three heads.
DEFAULT_STRIDES = (8, 16, 32)
#: Largest distance bin (the distribution has reg_max + 1 bins), in units of the stride.
DEFAULT_REG_MAX = 10


def distribution_to_distance(reg: np.ndarray, reg_max: int = DEFAULT_REG_MAX) -> np.ndarray:
    """``(N, 4 * (reg_max + 1))`` logits -> ``(N, 4)`` expected left, top, right, bottom (in strides)."""
    logits = np.asarray(reg, np.float64).reshape(-1, 4, reg_max + 1)
    logits = logits - logits.max(axis=-1, keepdims=True)
    p = np.exp(logits)
    p /= p.sum(axis=-1, keepdims=True)
    return p @ np.arange(reg_max + 1, dtype=np.float64)


def nanodet_centres(height: int, width: int, stride: int, cell_offset: float = 0.0) -> np.ndarray:
    """``(N, 2)`` x, y of each cell's anchor point, row by row: ``(index + cell_offset) * stride``."""
    ny, nx = math.ceil(height / stride), math.ceil(width / stride)
    yy, xx = np.meshgrid(np.arange(ny), np.arange(nx), indexing="ij")
    return (np.stack([xx.ravel(), yy.ravel()], axis=1).astype(np.float64) + cell_offset) * stride


def decode_nanodet(
    scores: Sequence[np.ndarray],
    distributions: Sequence[np.ndarray],
    height: int,
    width: int,
    score_threshold: float = 0.35,
    nms_iou: float = 0.5,
    strides: Sequence[int] = DEFAULT_STRIDES,
    reg_max: int = DEFAULT_REG_MAX,
    cell_offset: float = 0.0,
    max_det: int = 100,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Objects from NanoDet's per-stride outputs.

    Parameters
    ----------
    scores
        One ``(N_s, C)`` array of class probabilities per stride (already sigmoid).
    distributions
        One ``(N_s, 4 * (reg_max + 1))`` array of distance logits per stride.
    height, width
        Size of the network input.
    score_threshold
        Minimum class probability; a cell may yield several classes.
    nms_iou
        IoU above which the weaker box of the same class is dropped.
    cell_offset
        0.0 when the anchor point is the cell's corner, 0.5 for its centre.

    Returns
    -------
    tuple
        Boxes ``(K, 4)`` xyxy in input pixels, scores ``(K,)`` and class ids ``(K,)``, best first.
    """
    all_boxes, all_scores, all_classes = [], [], []
    for stride, cls, reg in zip(strides, scores, distributions):
        cls = np.asarray(cls).reshape(-1, np.asarray(cls).shape[-1])
        centres = nanodet_centres(height, width, stride, cell_offset)
        if len(centres) != len(cls):
            raise ValueError(f"stride {stride}: {len(cls)} cells, expected {len(centres)}")
        cell, klass = np.nonzero(cls > score_threshold)
        if cell.size == 0:
            continue
        dist = distribution_to_distance(np.asarray(reg).reshape(len(cls), -1)[cell], reg_max) * stride
        c = centres[cell]
        all_boxes.append(np.hstack([c - dist[:, :2], c + dist[:, 2:]]))
        all_scores.append(cls[cell, klass].astype(np.float64))
        all_classes.append(klass)
    if not all_boxes:
        return np.zeros((0, 4)), np.zeros(0), np.zeros(0, np.int64)
    boxes, sc, classes = np.concatenate(all_boxes), np.concatenate(all_scores), np.concatenate(all_classes)
    boxes[:, [0, 2]] = np.clip(boxes[:, [0, 2]], 0, width)
    boxes[:, [1, 3]] = np.clip(boxes[:, [1, 3]], 0, height)
    keep = batched_nms(boxes, sc, classes, nms_iou, max_det)
    return boxes[keep], sc[keep], classes[keep].astype(np.int64)
