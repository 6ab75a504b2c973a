"""Object detection with a fixed-size ONNX graph: NanoDet (GFL) or a YOLOv8/YOLO11 export."""

from __future__ import annotations

import numpy as np

from detectflow.detectors._common import as_bgr, prepare
from detectflow.detectors.base import Box, Detection, ModelInfo, StagedDetector
from detectflow.detectors.labels import COCO_LABELS, label_for
from detectflow.detectors.postprocess.letterbox import Transform
from detectflow.detectors.postprocess.nanodet import decode_nanodet
from detectflow.detectors.postprocess.yolo import decode_yolo
from detectflow.models.cards import ModelCard

__all__ = ["OnnxObjectDetector"]


class OnnxObjectDetector(StagedDetector):
    """Detector for a card whose postprocessor is ``nanodet`` or ``yolo``; labels from the card.

    Parameters
    ----------
    session
        onnxruntime session on the model's ONNX file.
    card
        The model card (``input.size`` is taken from the graph when the card leaves it out).
    info
        Reported with each result (provider in use included).
    score_threshold
        Minimum class score.
    task
        Task name reported by the detector.
    """

    def __init__(self, session, card: ModelCard, info: ModelInfo, score_threshold: float = 0.35,
                 task: str = "object") -> None:
        super().__init__()
        if card.postprocessor not in ("nanodet", "yolo"):
            raise ValueError(f"{card.name}: OnnxObjectDetector cannot decode {card.postprocessor!r} outputs")
        inp = session.get_inputs()[0]
        if card.input.size is None:
            shape = inp.shape
            hw = (shape[2], shape[3]) if card.input.layout == "NCHW" else (shape[1], shape[2])
            if not all(isinstance(d, int) for d in hw):
                hw = (640, 640)  # dynamic export: use the ultralytics default
            card = card.model_copy(update={"input": card.input.model_copy(update={"size": tuple(hw)})})
        self.task = task
        self.info = info
        self.card = card
        self.session = session
        self.score_threshold = score_threshold
        self._input = card.input.name or inp.name
        opts = card.postprocessor_options
        if card.postprocessor == "nanodet":
            self._scores, self._dists = _nanodet_outputs(session, opts, len(card.labels) or 80)
        self._options = {k: v for k, v in opts.items() if k not in ("outputs",)}
        labels = list(card.labels)
        if not labels and card.postprocessor == "yolo":
            shape = session.get_outputs()[0].shape  # [1, 4 + C, A]: 80 classes means COCO
            if len(shape) == 3 and shape[1] == 4 + len(COCO_LABELS):
                labels = list(COCO_LABELS)
        self.labels = labels

    def prepare(self, image: np.ndarray) -> tuple[np.ndarray, Transform]:
        """The input tensor (leading axis 1) for ``image`` (BGR uint8) and the transform back to its pixels."""
        return prepare(as_bgr(image), self.card)

    def infer(self, x: np.ndarray) -> list[np.ndarray]:
        """The graph's outputs for a stacked batch ``x`` (the session itself; a batcher may stand in)."""
        if self.card.postprocessor == "nanodet":
            return self.session.run(self._scores + self._dists, {self._input: x})
        return self.session.run(None, {self._input: x})[:1]

    def finish(self, outputs: list[np.ndarray], x_shape: tuple[int, ...], tf: Transform) -> list[Detection]:
        """Decoded objects of one input from its outputs (leading axis 1), in pixels of the original image."""
        h, w = self.card.input.size
        if self.card.postprocessor == "nanodet":
            n = len(self._scores)
            o = {k: v for k, v in self._options.items() if k in ("strides", "reg_max", "cell_offset", "nms_iou", "max_det")}
            boxes, scores, classes = decode_nanodet(
                [a[0] for a in outputs[:n]], [a[0] for a in outputs[n:]], h, w,
                score_threshold=self.score_threshold, **o,
            )
        else:
            (out,) = outputs
            o = {k: v for k, v in self._options.items() if k in ("nms_iou", "max_det", "num_classes")}
            if self.labels and "num_classes" not in o:
                o["num_classes"] = len(self.labels)
            boxes, scores, classes = decode_yolo(out, score_threshold=self.score_threshold, **o)
        boxes = tf.boxes_to_original(boxes)
        dets = [
            Detection(
                label=label_for(self.labels, int(c)),
                score=float(s),
                box=Box(float(b[0]), float(b[1]), float(b[2] - b[0]), float(b[3] - b[1])),
            )
            for b, s, c in zip(boxes, scores, classes)
        ]
        return [d for d in dets if d.box.width > 0 and d.box.height > 0]

    def warmup(self) -> None:
        """One pass on a blank image of the input size."""
        h, w = self.card.input.size
        self.detect(np.zeros((h, w, 3), np.uint8))


def _nanodet_outputs(session, opts: dict, num_classes: int) -> tuple[list[str], list[str]]:
    """Output names of the per-stride scores and distributions, finest stride first."""
    named = opts.get("outputs")
    if named:
        return list(named["scores"]), list(named["distributions"])
    reg_bins = 4 * (int(opts.get("reg_max", 10)) + 1)
    outs = [(o.name, o.shape) for o in session.get_outputs()]
    cells = lambda s: s[-2] if isinstance(s[-2], int) else 0  # noqa: E731
    scores = sorted([o for o in outs if o[1][-1] == num_classes], key=lambda o: -cells(o[1]))
    dists = sorted([o for o in outs if o[1][-1] == reg_bins], key=lambda o: -cells(o[1]))
    if not scores or len(scores) != len(dists):
        raise ValueError(f"cannot tell NanoDet score and distribution outputs apart: {outs}")
    return [o[0] for o in scores], [o[0] for o in dists]
