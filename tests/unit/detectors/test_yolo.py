"""YOLOv8/YOLO11 head decoding on synthetic outputs."""

from __future__ import annotations

import numpy as np
import pytest

from detectflow.detectors.postprocess.yolo import decode_yolo


def _head(boxes_cxcywh, class_scores, anchors=100):
    c = len(class_scores[0])
    out = np.zeros((1, 4 + c, anchors), np.float32)
    for i, (b, s) in enumerate(zip(boxes_cxcywh, class_scores)):
        out[0, :4, i * 7] = b
        out[0, 4:, i * 7] = s
    return out


def test_decode_yolo_converts_centre_boxes_and_picks_best_class() -> None:
    out = _head([[100, 80, 40, 20], [300, 300, 100, 200]], [[0.1, 0.9, 0.0], [0.6, 0.2, 0.3]])
    boxes, scores, classes = decode_yolo(out, score_threshold=0.25)
    np.testing.assert_allclose(boxes, [[80, 70, 120, 90], [250, 200, 350, 400]])
    np.testing.assert_allclose(scores, [0.9, 0.6], rtol=1e-6)
    assert classes.tolist() == [1, 0]


def test_decode_yolo_suppresses_duplicates_of_one_class_only() -> None:
    out = _head([[100, 100, 50, 50], [102, 101, 50, 50], [101, 100, 50, 50]],
                [[0.9, 0.0], [0.8, 0.0], [0.0, 0.7]])
    _, scores, classes = decode_yolo(out, nms_iou=0.45)
    np.testing.assert_allclose(scores, [0.9, 0.7], rtol=1e-6)
    assert classes.tolist() == [0, 1]


def test_decode_yolo_accepts_transposed_and_unbatched_layouts() -> None:
    out = _head([[100, 80, 40, 20]], [[0.0, 0.9]])
    ref = decode_yolo(out)
    for alt in (out[0], out.transpose(0, 2, 1)):
        got = decode_yolo(alt, num_classes=2)
        for a, b in zip(ref, got):
            np.testing.assert_allclose(a, b)


def test_decode_yolo_nothing_above_threshold_and_bad_shapes() -> None:
    boxes, scores, classes = decode_yolo(_head([[1, 1, 1, 1]], [[0.1, 0.2]]), score_threshold=0.25)
    assert boxes.shape == (0, 4) and scores.size == 0 and classes.size == 0
    with pytest.raises(ValueError):
        decode_yolo(np.zeros((2, 84, 10)))
    with pytest.raises(ValueError):
        decode_yolo(np.zeros((3, 4)))
