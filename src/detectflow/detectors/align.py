"""Face alignment: a similarity transform from five landmarks onto dlib's chip template, then a warp."""

from __future__ import annotations

from collections.abc import Sequence

import cv2
import numpy as np

__all__ = [
    "DEFAULT_CHIP_SIZE",
    "DEFAULT_CHIP_PADDING",
    "DLIB_TEMPLATE",
    "align_faces",
    "chip_template",
    "estimate_similarity",
]

#: Side of the aligned chip the embedder takes (pixels).
DEFAULT_CHIP_SIZE = 150
#: Border around the template face, as a fraction of the face's unit square on each side.
DEFAULT_CHIP_PADDING = 0.25

#: dlib's five-point template (dlib/image_transforms/interpolation.h, get_face_chip_details) in units
#: of the face square before padding, in RetinaFace's landmark order: left eye, right eye, nose tip,
#: left and right mouth corners (left and right as seen in the image).
DLIB_TEMPLATE = np.array(
    [
        [0.22553, 0.21599],
        [0.75476, 0.21599],
        [0.490127, 0.515625],
        [0.254149, 0.780233],
        [0.726104, 0.780233],
    ],
    dtype=np.float64,
)


def chip_template(size: int = DEFAULT_CHIP_SIZE, padding: float = DEFAULT_CHIP_PADDING) -> np.ndarray:
    """The template's five points in chip pixels: ``(padding + p) / (1 + 2 * padding) * size``.

    Parameters
    ----------
    size
        Chip side in pixels.
    padding
        Border as a fraction of the face square (dlib's default for its embedder: 0.25).

    Returns
    -------
    np.ndarray
        Shape (5, 2), float64, (x, y).
    """
    return (padding + DLIB_TEMPLATE) / (1 + 2 * padding) * size


def estimate_similarity(src: np.ndarray, dst: np.ndarray) -> np.ndarray:
    """Least-squares similarity transforms (rotation, uniform scale, translation) taking ``src`` to ``dst``.

    Umeyama's closed form (IEEE TPAMI 13(4), 1991) over all points, vectorised over a batch.
    Written here rather than taken from OpenCV: ``cv2.estimateAffinePartial2D`` is a robust
    estimator (RANSAC or LMedS over point subsets, then a refinement), so it does not give the
    least-squares fit over all five landmarks that the template was made for, and it takes one
    face per call.

    Parameters
    ----------
    src
        Points to map, shape (N, K, 2) or (K, 2), K >= 2.
    dst
        Target points, shape (K, 2) (shared by the batch) or (N, K, 2).

    Returns
    -------
    np.ndarray
        Affine matrices, shape (N, 2, 3) (or (2, 3) for a single ``src``), float64:
        ``dst ≈ M[:, :2] @ p + M[:, 2]``.
    """
    src = np.asarray(src, np.float64)
    single = src.ndim == 2
    if single:
        src = src[None]
    dst = np.broadcast_to(np.asarray(dst, np.float64), src.shape)
    k = src.shape[1]
    mu_s, mu_d = src.mean(axis=1, keepdims=True), dst.mean(axis=1, keepdims=True)
    s, d = src - mu_s, dst - mu_d
    var_s = (s**2).sum(axis=(1, 2)) / k
    cov = np.einsum("nki,nkj->nij", d, s) / k  # (N, 2, 2): dst x src
    u, sig, vt = np.linalg.svd(cov)
    sign = np.ones((len(src), 2))
    sign[np.linalg.det(u) * np.linalg.det(vt) < 0, 1] = -1  # keep a rotation, never a reflection
    rot = u @ (sign[:, :, None] * vt)
    with np.errstate(divide="ignore", invalid="ignore"):
        scale = np.where(var_s > 0, (sig * sign).sum(axis=1) / var_s, 0.0)
    a = scale[:, None, None] * rot
    t = mu_d[:, 0, :] - np.einsum("nij,nj->ni", a, mu_s[:, 0, :])
    m = np.concatenate([a, t[:, :, None]], axis=2)
    return m[0] if single else m


def align_faces(
    image: np.ndarray,
    landmarks: np.ndarray | Sequence[Sequence[Sequence[float]]],
    size: int = DEFAULT_CHIP_SIZE,
    padding: float = DEFAULT_CHIP_PADDING,
    *,
    bgr: bool = True,
) -> np.ndarray:
    """Aligned RGB face chips: each face's five landmarks mapped onto dlib's template, bilinear warp.

    Parameters
    ----------
    image
        The photo the landmarks are in, uint8 (H, W, 3), BGR unless ``bgr`` is False.
    landmarks
        Five (x, y) points per face in image pixels, shape (N, 5, 2), in RetinaFace's order
        (as in ``Detection.landmarks``).
    size
        Chip side in pixels.
    padding
        Border around the template face (see :func:`chip_template`).
    bgr
        Whether ``image`` is BGR (the detectors' convention); chips are always RGB.

    Returns
    -------
    np.ndarray
        Chips, shape (N, size, size, 3), uint8 RGB; pixels outside the photo are black.
    """
    points = np.asarray(landmarks, np.float64).reshape(-1, 5, 2)
    chips = np.empty((len(points), size, size, 3), np.uint8)
    if not len(points):
        return chips
    for chip, m in zip(chips, estimate_similarity(points, chip_template(size, padding))):
        cv2.warpAffine(image, m, (size, size), dst=chip, flags=cv2.INTER_LINEAR,
                       borderMode=cv2.BORDER_CONSTANT, borderValue=(0, 0, 0))
    # swap channels on the small chips rather than converting the whole photo
    return np.ascontiguousarray(chips[..., ::-1]) if bgr else chips
