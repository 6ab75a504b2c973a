"""Face detection with a RetinaFace ONNX graph (any input size; long images are shrunk first)."""

from __future__ import annotations

import numpy as np

from detectflow.detectors._common import as_bgr, prepare
from detectflow.detectors.base import Box, Detection, ModelInfo, StagedDetector
from detectflow.detectors.postprocess.letterbox import Transform
from detectflow.detectors.postprocess.retinaface import decode_retinaface
from detectflow.models.cards import ModelCard

__all__ = ["OnnxFaceDetector"]


class OnnxFaceDetector(StagedDetector):
    """Detector for a card whose postprocessor is ``retinaface``; labels every detection ``face``.

    Parameters
    ----------
    session
        onnxruntime session on the model's ONNX file.
    card
        The model card.
    info
        Reported with each result (provider in use included).
    score_threshold
        Minimum face probability.
    task
        Task name reported by the detector.
    """

    def __init__(self, session, card: ModelCard, info: ModelInfo, score_threshold: float = 0.5,
                 task: str = "face") -> None:
        super().__init__()
        if card.postprocessor != "retinaface":
            raise ValueError(f"{card.name}: OnnxFaceDetector needs postprocessor 'retinaface', not {card.postprocessor!r}")
        self.task = task
        self.info = info
        self.card = card
        self.session = session
        self.score_threshold = score_threshold
        self._input = card.input.name or session.get_inputs()[0].name
        self._outputs = ["loc", "conf", "landmarks"]
        self._options = {k: v for k, v in card.postprocessor_options.items()
                         if k in ("strides", "anchor_sizes", "variances", "nms_iou")}
        self._label = card.labels[0] if card.labels else "face"

    def prepare(self, image: np.ndarray) -> tuple[np.ndarray, Transform]:
        """The input tensor (leading axis 1) for ``image`` (BGR uint8) and the transform back to its pixels."""
        return prepare(as_bgr(image), self.card)

    def infer(self, x: np.ndarray) -> list[np.ndarray]:
        """The graph's outputs for a stacked batch ``x`` (the session itself; a batcher may stand in)."""
        return self.session.run(self._outputs, {self._input: x})

    def finish(self, outputs: list[np.ndarray], x_shape: tuple[int, ...], tf: Transform) -> list[Detection]:
        """Decoded faces of one input from its outputs (leading axis 1), in pixels of the original image."""
        loc, conf, landmarks = outputs
        boxes, scores, points = decode_retinaface(
            loc[0], conf[0], landmarks[0], x_shape[2], x_shape[3],
            score_threshold=self.score_threshold, **self._options,
        )
        boxes = tf.boxes_to_original(boxes)
        points = tf.points_to_original(points)
        return [
            Detection(
                label=self._label,
                score=float(s),
                box=Box(float(b[0]), float(b[1]), float(b[2] - b[0]), float(b[3] - b[1])),
                landmarks=tuple((float(px), float(py)) for px, py in p),
            )
            for b, s, p in zip(boxes, scores, points)
        ]

    def warmup(self) -> None:
        """One pass on a blank 640x480 image."""
        self.detect(np.zeros((480, 640, 3), np.uint8))
