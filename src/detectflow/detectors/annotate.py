"""Draw detections on a copy of the image: coloured boxes, dark-outlined labels, face landmarks."""

from __future__ import annotations

import zlib
from collections.abc import Sequence

import cv2
import numpy as np

from detectflow.detectors.base import Detection

__all__ = ["annotate", "colour_for"]

# Saturated mid-brightness colours (BGR) that stand out on both light and dark photos.
_PALETTE = (
    (56, 56, 255), (151, 157, 255), (31, 112, 255), (29, 178, 255), (49, 210, 207), (10, 249, 72),
    (23, 204, 146), (134, 219, 61), (52, 147, 26), (187, 212, 0), (168, 153, 44), (255, 194, 0),
    (147, 69, 52), (255, 115, 100), (236, 24, 0), (255, 56, 132), (133, 0, 82), (255, 56, 203),
)
#: Landmark colours: right eye, left eye, nose, right mouth corner, left mouth corner.
_LANDMARK_COLOURS = ((0, 0, 255), (0, 255, 255), (255, 0, 255), (0, 255, 0), (255, 0, 0))
_FONT = cv2.FONT_HERSHEY_SIMPLEX
_OUTLINE = (0, 0, 0)


def colour_for(label: str) -> tuple[int, int, int]:
    """A stable BGR colour for ``label``."""
    return _PALETTE[zlib.crc32(label.encode()) % len(_PALETTE)]


def _text_colour(bg: tuple[int, int, int]) -> tuple[int, int, int]:
    b, g, r = bg
    return (0, 0, 0) if 0.299 * r + 0.587 * g + 0.114 * b > 150 else (255, 255, 255)


def annotate(image_bgr: np.ndarray, detections: Sequence[Detection]) -> np.ndarray:
    """A copy of ``image_bgr`` with each detection drawn.

    Each box gets its label's colour over a thin dark outline, a filled label tag with a dark
    border (``label 0.93``) and, for faces, five landmark dots with dark rims, so drawings stay
    readable on light and dark photos alike. Sizes scale with the image.

    Parameters
    ----------
    image_bgr
        ``(H, W, 3)`` uint8 (gray images are converted).
    detections
        In pixels of ``image_bgr``.

    Returns
    -------
    numpy.ndarray
        New BGR uint8 image of the same size.
    """
    img = image_bgr
    if img.ndim == 2:
        img = cv2.cvtColor(img, cv2.COLOR_GRAY2BGR)
    elif img.shape[2] == 4:
        img = cv2.cvtColor(img, cv2.COLOR_BGRA2BGR)
    out = np.ascontiguousarray(img).copy()
    h, w = out.shape[:2]
    thick = max(2, round(max(h, w) / 400))
    scale = max(0.45, max(h, w) / 1400)
    text_thick = max(1, thick // 2)
    # Draw weakest first so the best detection ends up on top.
    for det in sorted(detections, key=lambda d: d.score):
        colour = colour_for(det.label)
        b = det.box
        p1 = (int(round(b.x)), int(round(b.y)))
        p2 = (int(round(b.x + b.width)), int(round(b.y + b.height)))
        cv2.rectangle(out, p1, p2, _OUTLINE, thick + 2, cv2.LINE_AA)
        cv2.rectangle(out, p1, p2, colour, thick, cv2.LINE_AA)
        text = f"{det.label} {det.score:.2f}"
        (tw, th), base = cv2.getTextSize(text, _FONT, scale, text_thick)
        pad = max(2, thick)
        tag_h = th + base + 2 * pad
        # Above the box when there is room, else inside its top edge.
        y0 = p1[1] - tag_h if p1[1] - tag_h >= 0 else p1[1]
        x0 = min(max(p1[0], 0), max(0, w - tw - 2 * pad))
        cv2.rectangle(out, (x0, y0), (x0 + tw + 2 * pad, y0 + tag_h), colour, -1)
        cv2.rectangle(out, (x0, y0), (x0 + tw + 2 * pad, y0 + tag_h), _OUTLINE, 1)
        cv2.putText(out, text, (x0 + pad, y0 + pad + th), _FONT, scale, _text_colour(colour), text_thick, cv2.LINE_AA)
        if det.landmarks:
            r = max(2, round(min(b.width, b.height) / 40))
            for (x, y), c in zip(det.landmarks, _LANDMARK_COLOURS):
                centre = (int(round(x)), int(round(y)))
                cv2.circle(out, centre, r + 1, _OUTLINE, -1, cv2.LINE_AA)
                cv2.circle(out, centre, r, c, -1, cv2.LINE_AA)
    return out
