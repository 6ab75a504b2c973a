"""Pure numpy postprocessors: decode raw network outputs into boxes, scores and classes."""

from detectflow.detectors.postprocess.letterbox import Transform, letterbox, shrink_to_max_side, stretch
from detectflow.detectors.postprocess.nanodet import decode_nanodet
from detectflow.detectors.postprocess.nms import batched_nms, iou, nms
from detectflow.detectors.postprocess.retinaface import decode_retinaface, retinaface_priors
from detectflow.detectors.postprocess.yolo import decode_yolo

__all__ = [
    "Transform",
    "letterbox",
    "stretch",
    "shrink_to_max_side",
    "nms",
    "batched_nms",
    "iou",
    "retinaface_priors",
    "decode_retinaface",
    "decode_nanodet",
    "decode_yolo",
]
