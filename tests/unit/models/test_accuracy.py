"""Pairing fp32 and int8 detection lists, and the pass/fail decision of the accuracy report."""

from __future__ import annotations

import pytest

from detectflow.detectors.base import Box, Detection
from detectflow.models.accuracy import AccuracyBounds, compare_detections, decide, iou, summarize


def _det(label: str, score: float, x: float, y: float = 0.0, w: float = 100.0, h: float = 100.0) -> Detection:
    return Detection(label=label, score=score, box=Box(x, y, w, h))


def test_iou_of_identical_disjoint_and_shifted_boxes() -> None:
    a = _det("face", 0.9, 0)
    assert iou(a, a) == 1.0
    assert iou(a, _det("face", 0.9, 200)) == 0.0
    assert iou(a, _det("face", 0.9, 10)) == pytest.approx(90 * 100 / (2 * 100 * 100 - 90 * 100))


def test_compare_detections_pairs_same_boxes_and_reports_the_score_change() -> None:
    ref = [_det("face", 0.99, 0), _det("face", 0.80, 300)]
    cand = [_det("face", 0.75, 301), _det("face", 0.98, 1)]  # other order, 1 px shifts
    c = compare_detections("img", ref, cand)
    assert (c.reference, c.candidate, c.paired, c.lost, c.gained) == (2, 2, 2, [], [])
    assert c.min_iou == pytest.approx(99 / 101)
    assert c.max_score_diff == pytest.approx(0.05)
    assert c.same_labels


def test_compare_detections_below_min_iou_is_one_lost_and_one_gained() -> None:
    c = compare_detections("img", [_det("face", 0.9, 0)], [_det("face", 0.9, 10)], min_iou=0.9)  # IoU 0.82
    assert (c.paired, c.lost, c.gained, c.min_iou, c.max_score_diff) == (0, ["face"], ["face"], None, None)


def test_compare_detections_never_pairs_different_labels() -> None:
    c = compare_detections("img", [_det("cup", 0.6, 0)], [_det("bowl", 0.6, 0)])
    assert (c.paired, c.lost, c.gained, c.same_labels) == (0, ["cup"], ["bowl"], False)


def test_compare_detections_pairs_one_to_one_best_iou_first() -> None:
    # Two fp32 boxes close together, one int8 box nearer the second: only the second pairs
    ref = [_det("person", 0.9, 0), _det("person", 0.8, 4)]
    cand = [_det("person", 0.85, 5)]
    c = compare_detections("img", ref, cand)
    assert c.paired == 1 and c.lost == ["person"] and c.gained == []
    assert c.max_score_diff == pytest.approx(0.05)


def test_decide_passes_when_every_image_pairs_within_the_score_bound() -> None:
    cs = [compare_detections("a", [_det("face", 0.9, 0)], [_det("face", 0.85, 0)]),
          compare_detections("empty", [], [])]
    assert decide(cs, AccuracyBounds(max_score_diff=0.1)) == (True, [])


def test_decide_fails_with_one_reason_per_failing_image() -> None:
    cs = [
        compare_detections("moved", [_det("face", 0.9, 0)], [_det("face", 0.9, 30)]),
        compare_detections("weaker", [_det("face", 0.9, 0)], [_det("face", 0.7, 0)]),
        compare_detections("new", [], [_det("face", 0.6, 0)]),
        compare_detections("fine", [_det("face", 0.9, 0)], [_det("face", 0.9, 0)]),
    ]
    passed, reasons = decide(cs, AccuracyBounds(min_iou=0.9, max_score_diff=0.1))
    assert not passed
    assert reasons == ["moved: lost face; gained face", "weaker: score differs by 0.200 > 0.1", "new: gained face"]


def test_summarize_adds_up_images() -> None:
    cs = [compare_detections("a", [_det("face", 0.9, 0)], [_det("face", 0.8, 1)]),
          compare_detections("b", [_det("face", 0.9, 0)], [])]
    s = summarize(cs)
    assert s == {"images": 2, "fp32_detections": 2, "int8_detections": 1, "paired": 1, "lost": 1, "gained": 0,
                 "min_iou": pytest.approx(0.9802, abs=1e-4), "max_score_diff": pytest.approx(0.1)}
