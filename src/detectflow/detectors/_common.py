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
    x = (img.astype(np.float32) - np.asarray(pre.mean, np.float32)) / np.asarray(pre.std, np.float32)
    if spec.layout == "NCHW":
        x = x.transpose(2, 0, 1)
    return np.ascontiguousarray(x[None]), tf


def model_info(card: ModelCard, sha256: str, provider: str, variant: str) -> ModelInfo:
    """ModelInfo reported with results."""
    f = card.files[variant]
    return ModelInfo(
        name=card.name,
        version=card.version,
        sha256=sha256,
        provider=provider,
        extra={"file": f.path, "precision": f.precision, "postprocessor": card.postprocessor, "variant": variant},
    )
