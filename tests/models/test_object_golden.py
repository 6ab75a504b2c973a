"""NanoDet on shipped photos: golden boxes, COCO labels, the pinned anchor point."""

from __future__ import annotations

import pytest

from detectflow.detectors.base import Detector
from detectflow.detectors.labels import COCO_LABELS
from tests.models.golden import best_iou, box_of, load_golden
from tests.support.images import image_bgr

GOLDEN = load_golden("objects")


@pytest.mark.parametrize("name", sorted(GOLDEN["images"]))
def test_object_detector_matches_golden_boxes(object_detector: Detector, name: str) -> None:
    # Given a shipped photo and what must be found in it
    expected = GOLDEN["images"][name]
    # When objects are detected at the default threshold (0.35)
    dets = object_detector.detect(image_bgr(name))
    # Then every golden object is found in place; a negative photo yields nothing
    if not expected:
        assert dets == []
    for e in expected:
        assert best_iou(e, dets) >= GOLDEN["min_iou"], (e, [(d.label, box_of(d)) for d in dets])


def test_object_detector_labels_are_coco_names(object_detector: Detector) -> None:
    assert object_detector.card.labels == list(COCO_LABELS)
    labels = {d.label for n in ("grace_hopper", "coffee", "motorcycle_left") for d in object_detector.detect(image_bgr(n))}
    assert {"person", "tie", "cup", "motorcycle"} <= labels <= set(COCO_LABELS)


def test_object_detector_cell_centre_anchor_fits_the_hand_labelled_box(object_detector: Detector) -> None:
    # Given a motorcycle box drawn by hand
    truth = GOLDEN["hand_labelled"]["motorcycle_left"]
    image = image_bgr("motorcycle_left")
    # When decoded with the card's anchor point (cell centre) and with the cell corner
    centre = best_iou(truth, object_detector.detect(image))
    options = object_detector._options
    saved = options["cell_offset"]
    try:
        options["cell_offset"] = 0.0
        corner = best_iou(truth, object_detector.detect(image))
    finally:
        options["cell_offset"] = saved
    # Then the cell centre fits the truth well, and clearly better than the corner
    assert saved == 0.5
    assert centre >= 0.9
    assert centre > corner + 0.05
