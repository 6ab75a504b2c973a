"""pick_face: the only face, the one by index, the one under a box, or a per-image code."""

from __future__ import annotations

from detectflow.detectors.base import Box as DBox
from detectflow.detectors.base import Detection
from detectflow.galleries.enrol import iou, pick_face
from detectflow.jobs.results import Box


def _face(x: float) -> Detection:
    return Detection("face", 0.9, DBox(x, 0, 100, 100), ((0, 0),) * 5)


def test_pick_face_codes():
    two = [_face(0), _face(200)]
    assert pick_face([])[:2] == (None, "no_face")
    assert pick_face([_face(0)])[:2] == (0, "enrolled")
    assert pick_face(two)[:2] == (None, "several_faces")
    assert pick_face(two, face_index=1)[:2] == (1, "enrolled")
    assert pick_face(two, face_index=2)[:2] == (None, "face_not_found")
    assert pick_face(two, box=Box(x=210, y=10, width=80, height=80))[:2] == (1, "enrolled")
    assert pick_face(two, box=Box(x=1000, y=0, width=10, height=10))[:2] == (None, "face_not_found")


def test_iou_of_identical_apart_and_half_overlapping_boxes():
    a = Box(x=0, y=0, width=10, height=10)
    assert iou(a, a) == 1.0
    assert iou(a, Box(x=20, y=0, width=10, height=10)) == 0.0
    assert abs(iou(a, Box(x=5, y=0, width=10, height=10)) - 50 / 150) < 1e-9
