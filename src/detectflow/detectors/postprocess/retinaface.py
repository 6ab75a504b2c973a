"""RetinaFace: SSD-style priors, box and landmark decoding, NMS."""

from __future__ import annotations

import math
from collections.abc import Sequence
from functools import lru_cache

import numpy as np

from detectflow.detectors.postprocess.nms import nms

__all__ = ["retinaface_priors", "decode_boxes", "decode_landmarks", "decode_retinaface"]

#: Feature strides and the two anchor sizes of each (pixels), as trained.
DEFAULT_STRIDES = (8, 16, 32)
DEFAULT_ANCHOR_SIZES = ((16, 32), (64, 128), (256, 512))
#: Variances of the centre and size encodings.
DEFAULT_VARIANCES = (0.1, 0.2)


def retinaface_priors(
    height: int,
    width: int,
    strides: Sequence[int] = DEFAULT_STRIDES,
    anchor_sizes: Sequence[Sequence[int]] = DEFAULT_ANCHOR_SIZES,
) -> np.ndarray:
    """Anchors of an input of ``height`` x ``width``, in the network's output order.

    Returns
    -------
    numpy.ndarray
        ``(A, 4)`` as centre x, centre y, width, height in input pixels; cells row by row, each
        cell's anchor sizes in turn, stride after stride.
    """
    return _priors(height, width, tuple(strides), tuple(tuple(s) for s in anchor_sizes)).copy()


@lru_cache(maxsize=16)
def _priors(height, width, strides, anchor_sizes) -> np.ndarray:
    out = []
    for stride, sizes in zip(strides, anchor_sizes):
        ny, nx = math.ceil(height / stride), math.ceil(width / stride)
        yy, xx = np.meshgrid(np.arange(ny), np.arange(nx), indexing="ij")
        centres = (np.stack([xx.ravel(), yy.ravel()], axis=1) + 0.5) * stride
        k = len(sizes)
        c = np.repeat(centres, k, axis=0)
        wh = np.tile(np.array([[s, s] for s in sizes], np.float64), (len(centres), 1))
        out.append(np.hstack([c, wh]))
    return np.concatenate(out).astype(np.float64)


def decode_boxes(loc: np.ndarray, priors: np.ndarray, variances: Sequence[float] = DEFAULT_VARIANCES) -> np.ndarray:
    """``(A, 4)`` regression outputs -> ``(A, 4)`` x1, y1, x2, y2 in input pixels."""
    loc = np.asarray(loc, np.float64)
    c = priors[:, :2] + loc[:, :2] * variances[0] * priors[:, 2:]
    wh = priors[:, 2:] * np.exp(loc[:, 2:] * variances[1])
    return np.hstack([c - wh / 2, c + wh / 2])


def decode_landmarks(
    landmarks: np.ndarray, priors: np.ndarray, variances: Sequence[float] = DEFAULT_VARIANCES
) -> np.ndarray:
    """``(A, 10)`` landmark outputs -> ``(A, 5, 2)`` points in input pixels."""
    pts = np.asarray(landmarks, np.float64).reshape(-1, 5, 2)
    return priors[:, None, :2] + pts * variances[0] * priors[:, None, 2:]


def decode_retinaface(
    loc: np.ndarray,
    conf: np.ndarray,
    landmarks: np.ndarray,
    height: int,
    width: int,
    score_threshold: float = 0.5,
    nms_iou: float = 0.4,
    strides: Sequence[int] = DEFAULT_STRIDES,
    anchor_sizes: Sequence[Sequence[int]] = DEFAULT_ANCHOR_SIZES,
    variances: Sequence[float] = DEFAULT_VARIANCES,
    max_det: int = 1000,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Faces from one image's raw outputs.

    Parameters
    ----------
    loc, conf, landmarks
        ``(A, 4)``, ``(A, 2)`` (softmaxed background/face) and ``(A, 10)`` outputs (batch dim dropped).
    height, width
        Size of the network input.
    score_threshold
        Minimum face probability.
    nms_iou
        IoU above which the weaker of two faces is dropped.

    Returns
    -------
    tuple
        Boxes ``(K, 4)`` xyxy, scores ``(K,)`` and landmarks ``(K, 5, 2)``, in input pixels, best first.

    Raises
    ------
    ValueError
        When the number of outputs does not match the anchors of this input size.
    """
    priors = _priors(height, width, tuple(strides), tuple(tuple(s) for s in anchor_sizes))
    conf = np.asarray(conf).reshape(-1, 2)
    if len(conf) != len(priors):
        raise ValueError(f"{len(conf)} outputs for {len(priors)} anchors of a {width}x{height} input")
    scores = conf[:, 1]
    idx = np.flatnonzero(scores > score_threshold)
    if idx.size == 0:
        return np.zeros((0, 4)), np.zeros(0), np.zeros((0, 5, 2))
    boxes = decode_boxes(np.asarray(loc).reshape(-1, 4)[idx], priors[idx], variances)
    pts = decode_landmarks(np.asarray(landmarks).reshape(-1, 10)[idx], priors[idx], variances)
    keep = nms(boxes, scores[idx], nms_iou, max_det)
    return boxes[keep], scores[idx][keep].astype(np.float64), pts[keep]
