"""Shared pieces of the ONNX detectors: image normalisation, input tensors, model info."""

from __future__ import annotations

import cv2
import numpy as np

from detectflow.detectors.base import ModelInfo
from detectflow.detectors.postprocess.letterbox import Transform, letterbox, shrink_to_max_side, stretch
from detectflow.models.cards import ModelCard


def as_bgr(image: np.ndarray) -> np.ndarray:
    """Any uint8 image (gray, BGR, BGRA) as 3-channel BGR."""
    if image.ndim == 2:
        return cv2.cvtColor(image, cv2.COLOR_GRAY2BGR)
    if image.ndim == 3 and image.shape[2] == 1:
        return cv2.cvtColor(image[:, :, 0], cv2.COLOR_GRAY2BGR)
    if image.ndim == 3 and image.shape[2] == 4:
        return cv2.cvtColor(image, cv2.COLOR_BGRA2BGR)
    if image.ndim == 3 and image.shape[2] == 3:
        return image
    raise ValueError(f"expected an (H, W), (H, W, 3) or (H, W, 4) image, got shape {image.shape}")


def prepare(image: np.ndarray, card: ModelCard) -> tuple[np.ndarray, Transform]:
    """The input tensor for ``image`` (BGR uint8) and the transform back to its pixels."""
    pre, spec = card.preprocessing, card.input
    if pre.resize == "none":
        img, tf = shrink_to_max_side(image, pre.max_side)
    else:
        if spec.size is None:
            raise ValueError(f"{card.name}: resize {pre.resize!r} needs input.size in the card")
        img, tf = (letterbox(image, spec.size, pre.pad_value) if pre.resize == "letterbox"
                   else stretch(image, spec.size))
    if spec.color == "RGB":
        img = img[:, :, ::-1]
    if spec.layout == "NHWC":
        x = (img.astype(np.float32) - np.asarray(pre.mean, np.float32)) / np.asarray(pre.std, np.float32)
        return np.ascontiguousarray(x[None]), tf
    # NCHW, one channel plane at a time: no full-size float temporaries.
    h, w = img.shape[:2]
    x = np.empty((1, 3, h, w), np.float32)
    for c in range(3):
        np.subtract(img[:, :, c], np.float32(pre.mean[c]), out=x[0, c], dtype=np.float32)
        if pre.std[c] != 1:
            np.divide(x[0, c], np.float32(pre.std[c]), out=x[0, c])
    return x, tf


def model_info(card: ModelCard, sha256: str, provider: str, variant: str) -> ModelInfo:
    """ModelInfo reported with results."""
    f = card.files[variant]
    return ModelInfo(
        name=card.name,
        version=card.version,
        sha256=sha256,
        provider=provider,
        extra={"file": f.path, "precision": f.precision, "postprocessor": card.postprocessor, "variant": variant},
        precision=f.precision,
    )
