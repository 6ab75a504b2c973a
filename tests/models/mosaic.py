"""A mosaic of the shipped one-face photos at several scales, with where each face must be."""

from __future__ import annotations

import cv2
import numpy as np

from tests.support.images import image_bgr

#: (photo, scale, x, y, mirrored): faces from about 35 to 170 pixels high.
PIECES = (
    ("astronaut", 1.0, 0, 0, False),
    ("grace_hopper", 0.75, 520, 0, False),
    ("astronaut", 0.4, 920, 0, False),
    ("camera", 0.6, 1140, 0, False),
    ("grace_hopper", 0.35, 0, 560, False),
    ("astronaut", 0.6, 200, 560, True),
    ("camera", 1.0, 530, 470, True),
)
SIZE = (1000, 1450)  # height, width


def face_mosaic(face_boxes: dict[str, list[float]]) -> tuple[np.ndarray, list[list[float]]]:
    """The mosaic (BGR) and the expected face boxes in it.

    Parameters
    ----------
    face_boxes
        Golden (x, y, w, h) face box of each source photo at full size.
    """
    canvas = np.full(SIZE + (3,), 128, np.uint8)
    expected = []
    for name, scale, x0, y0, mirrored in PIECES:
        img = image_bgr(name)
        h, w = img.shape[:2]
        nw, nh = round(w * scale), round(h * scale)
        piece = cv2.resize(img, (nw, nh), interpolation=cv2.INTER_AREA)
        bx, by, bw, bh = face_boxes[name]
        if mirrored:
            piece = piece[:, ::-1]
            bx = w - bx - bw
        canvas[y0 : y0 + nh, x0 : x0 + nw] = piece
        sx, sy = nw / w, nh / h
        expected.append([x0 + bx * sx, y0 + by * sy, bw * sx, bh * sy])
    return canvas, expected
