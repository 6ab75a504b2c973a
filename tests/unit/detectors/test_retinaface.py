"""RetinaFace priors and decoding on synthetic outputs."""

from __future__ import annotations

import numpy as np
import pytest

from detectflow.detectors.postprocess.retinaface import (
    decode_boxes,
    decode_landmarks,
    decode_retinaface,
    retinaface_priors,
)


def test_retinaface_priors_count_order_and_centres() -> None:
    # 64x96 input: strides 8/16/32 give 8x12, 4x6, 2x3 cells, two anchors each
    p = retinaface_priors(64, 96)
    assert p.shape == ((8 * 12 + 4 * 6 + 2 * 3) * 2, 4)
    # first cell, both sizes, then the next cell to the right
    np.testing.assert_allclose(p[:3], [[4, 4, 16, 16], [4, 4, 32, 32], [12, 4, 16, 16]])
    # last anchor: bottom-right cell of stride 32, size 512
    np.testing.assert_allclose(p[-1], [80, 48, 512, 512])


def test_retinaface_priors_round_odd_sizes_up() -> None:
    assert len(retinaface_priors(17, 23)) == 2 * (3 * 3 + 2 * 2 + 1)


def _encode(box_xyxy, prior, variances=(0.1, 0.2)):
    cx, cy = (box_xyxy[0] + box_xyxy[2]) / 2, (box_xyxy[1] + box_xyxy[3]) / 2
    w, h = box_xyxy[2] - box_xyxy[0], box_xyxy[3] - box_xyxy[1]
    return [(cx - prior[0]) / (variances[0] * prior[2]), (cy - prior[1]) / (variances[0] * prior[3]),
            np.log(w / prior[2]) / variances[1], np.log(h / prior[3]) / variances[1]]


def test_decode_boxes_inverts_the_ssd_encoding() -> None:
    priors = np.array([[100.0, 50.0, 32.0, 32.0], [8.0, 8.0, 16.0, 16.0]])
    boxes = np.array([[90.0, 30.0, 118.0, 66.0], [0.0, 0.0, 16.0, 16.0]])
    loc = np.array([_encode(b, p) for b, p in zip(boxes, priors)])
    np.testing.assert_allclose(decode_boxes(loc, priors), boxes, atol=1e-9)
    # zero regression is the anchor itself
    np.testing.assert_allclose(decode_boxes(np.zeros((1, 4)), priors[:1]), [[84, 34, 116, 66]])


def test_decode_landmarks_offsets_from_the_anchor_centre() -> None:
    priors = np.array([[100.0, 50.0, 20.0, 20.0]])
    out = decode_landmarks(np.array([[0, 0, 1, 0, 0, 1, -1, 0, 0, -1]], float), priors)
    np.testing.assert_allclose(out[0], [[100, 50], [102, 50], [100, 52], [98, 50], [100, 48]])


def test_decode_retinaface_thresholds_suppresses_and_orders() -> None:
    # Given a 64x64 input where two neighbouring anchors both see one face and a third sees another
    priors = retinaface_priors(64, 64)
    n = len(priors)
    conf = np.zeros((n, 2))
    conf[:, 0] = 1.0
    loc = np.zeros((n, 4))
    lm = np.zeros((n, 10))
    face_a = np.array([10.0, 10.0, 30.0, 34.0])
    face_b = np.array([40.0, 40.0, 60.0, 62.0])
    for i, box, score in ((0, face_a, 0.9), (2, face_a + 0.5, 0.8), (n - 2, face_b, 0.7)):
        loc[i] = _encode(box, priors[i])
        conf[i] = [1 - score, score]
    conf[5] = [0.6, 0.4]  # below threshold
    # When decoded
    boxes, scores, points = decode_retinaface(loc, conf, lm, 64, 64, score_threshold=0.5, nms_iou=0.4)
    # Then the duplicate is gone, best first, and landmarks sit on the anchor centres
    np.testing.assert_allclose(scores, [0.9, 0.7])
    np.testing.assert_allclose(boxes, [face_a, face_b], atol=1e-9)
    assert points.shape == (2, 5, 2)
    np.testing.assert_allclose(points[0], np.repeat(priors[0:1, :2], 5, axis=0))


def test_decode_retinaface_empty_and_shape_mismatch() -> None:
    n = len(retinaface_priors(32, 32))
    boxes, scores, points = decode_retinaface(np.zeros((n, 4)), np.tile([1.0, 0.0], (n, 1)), np.zeros((n, 10)), 32, 32)
    assert boxes.shape == (0, 4) and scores.shape == (0,) and points.shape == (0, 5, 2)
    with pytest.raises(ValueError, match="anchors"):
        decode_retinaface(np.zeros((n, 4)), np.zeros((n, 2)), np.zeros((n, 10)), 64, 64)
