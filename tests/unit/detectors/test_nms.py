"""Greedy NMS on synthetic boxes, and OpenCV's against the numpy reference it replaced."""

from __future__ import annotations

import numpy as np
import pytest

from bench.nms import numpy_nms  # the hand-written loop OpenCV's NMS replaced: the rule both follow
from detectflow.detectors.postprocess.nms import batched_nms, iou, nms


def test_iou_known_overlaps() -> None:
    box = np.array([0, 0, 10, 10])
    others = np.array([[0, 0, 10, 10], [5, 0, 15, 10], [20, 20, 30, 30], [0, 0, 0, 0]])
    np.testing.assert_allclose(iou(box, others), [1.0, 50 / 150, 0.0, 0.0])


def test_nms_drops_overlapping_weaker_box_and_keeps_distant_one() -> None:
    boxes = np.array([[0, 0, 10, 10], [1, 1, 11, 11], [50, 50, 60, 60]], float)
    scores = np.array([0.8, 0.9, 0.7])
    assert nms(boxes, scores, 0.5).tolist() == [1, 2]


def test_nms_keeps_boxes_overlapping_at_or_below_threshold() -> None:
    boxes = np.array([[0, 0, 10, 10], [5, 0, 15, 10]], float)  # IoU 1/3
    assert nms(boxes, np.array([0.9, 0.8]), 0.4).tolist() == [0, 1]
    assert nms(boxes, np.array([0.9, 0.8]), 0.3).tolist() == [0]


def test_nms_caps_at_max_det_and_handles_empty() -> None:
    boxes = np.array([[i * 20, 0, i * 20 + 10, 10] for i in range(5)], float)
    assert nms(boxes, np.arange(5) / 10, 0.5, max_det=2).tolist() == [4, 3]
    assert nms(np.zeros((0, 4)), np.zeros(0), 0.5).tolist() == []


def test_batched_nms_never_suppresses_across_classes() -> None:
    boxes = np.array([[0, 0, 10, 10], [0, 0, 10, 10], [0, 0, 10, 10]], float)
    scores = np.array([0.9, 0.8, 0.7])
    assert batched_nms(boxes, scores, np.array([0, 1, 0]), 0.5).tolist() == [0, 1]


@pytest.mark.parametrize("n", [0, 1])
def test_batched_nms_small_inputs(n: int) -> None:
    assert batched_nms(np.zeros((n, 4)) + [0, 0, 1, 1], np.ones(n), np.zeros(n), 0.5).tolist() == list(range(n))


@pytest.mark.parametrize("seed", range(20))
def test_nms_keeps_what_the_reference_keeps_on_random_clusters(seed: int) -> None:
    rng = np.random.default_rng(seed)
    n = int(rng.integers(1, 400))
    centres = rng.uniform(0, 600, (int(rng.integers(1, 30)), 2))
    xy = centres[rng.integers(0, len(centres), n)] + rng.normal(0, 6, (n, 2))
    boxes = np.concatenate([xy, xy + rng.uniform(10, 80, (n, 2))], axis=1)
    scores = rng.uniform(0.3, 1.0, n)  # distinct: ties may be broken either way
    threshold = float(rng.uniform(0.3, 0.7))
    assert nms(boxes, scores, threshold).tolist() == numpy_nms(boxes, scores, threshold).tolist()
