"""Resizing for the network input, and the exact way back to the uploaded image's pixels."""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

__all__ = ["Transform", "letterbox", "stretch", "shrink_to_max_side"]


@dataclass(frozen=True, slots=True)
class Transform:
    """Maps network-input pixels to original pixels: ``orig = (net - pad) / scale``, per axis."""

    scale_x: float
    scale_y: float
    pad_x: float
    pad_y: float
    #: Size of the original image, used to clip.
    width: int
    height: int

    def boxes_to_original(self, boxes: np.ndarray) -> np.ndarray:
        """``(N, 4)`` xyxy boxes in network pixels -> original pixels, clipped to the image."""
        b = np.asarray(boxes, np.float64).reshape(-1, 4).copy()
        b[:, [0, 2]] = np.clip((b[:, [0, 2]] - self.pad_x) / self.scale_x, 0, self.width)
        b[:, [1, 3]] = np.clip((b[:, [1, 3]] - self.pad_y) / self.scale_y, 0, self.height)
        return b

    def points_to_original(self, points: np.ndarray) -> np.ndarray:
        """``(..., 2)`` xy points in network pixels -> original pixels (not clipped)."""
        p = np.asarray(points, np.float64).copy()
        p[..., 0] = (p[..., 0] - self.pad_x) / self.scale_x
        p[..., 1] = (p[..., 1] - self.pad_y) / self.scale_y
        return p


def _resize(image: np.ndarray, width: int, height: int) -> np.ndarray:
    if (image.shape[1], image.shape[0]) == (width, height):
        return image
    shrinking = width < image.shape[1] and height < image.shape[0]
    return cv2.resize(image, (width, height), interpolation=cv2.INTER_AREA if shrinking else cv2.INTER_LINEAR)


def letterbox(image: np.ndarray, size: tuple[int, int], pad_value: int = 114) -> tuple[np.ndarray, Transform]:
    """Resize keeping the aspect ratio, then pad (centred) to ``size`` = (height, width).

    Returns
    -------
    tuple[numpy.ndarray, Transform]
        The padded image and the transform back to ``image``'s pixels.
    """
    h, w = image.shape[:2]
    th, tw = size
    r = min(th / h, tw / w)
    nw, nh = max(1, round(w * r)), max(1, round(h * r))
    resized = _resize(image, nw, nh)
    px, py = (tw - nw) // 2, (th - nh) // 2
    out = np.full((th, tw) + image.shape[2:], pad_value, dtype=image.dtype)
    out[py : py + nh, px : px + nw] = resized
    return out, Transform(nw / w, nh / h, float(px), float(py), w, h)


def stretch(image: np.ndarray, size: tuple[int, int]) -> tuple[np.ndarray, Transform]:
    """Resize to exactly ``size`` = (height, width), ignoring the aspect ratio."""
    h, w = image.shape[:2]
    th, tw = size
    return _resize(image, tw, th), Transform(tw / w, th / h, 0.0, 0.0, w, h)


def shrink_to_max_side(image: np.ndarray, max_side: int | None) -> tuple[np.ndarray, Transform]:
    """Shrink so the longest side is at most ``max_side`` (never enlarges; None keeps the size)."""
    h, w = image.shape[:2]
    if max_side is None or max(h, w) <= max_side:
        return image, Transform(1.0, 1.0, 0.0, 0.0, w, h)
    r = max_side / max(h, w)
    nw, nh = max(1, round(w * r)), max(1, round(h * r))
    return _resize(image, nw, nh), Transform(nw / w, nh / h, 0.0, 0.0, w, h)
