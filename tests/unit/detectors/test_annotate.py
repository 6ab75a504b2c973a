"""Drawing detections so they stay readable on light and dark photos."""

from __future__ import annotations

import numpy as np
import pytest

from detectflow.detectors.annotate import annotate, colour_for
from detectflow.detectors.base import Box, Detection

FACE = Detection("face", 0.97, Box(60, 80, 100, 120), landmarks=((90, 120), (130, 120), (110, 140), (95, 170), (125, 170)))
CUP = Detection("cup", 0.5, Box(200, 20, 80, 60))


@pytest.mark.parametrize("background", [0, 255])
def test_annotate_draws_colour_and_dark_outline_on_light_and_dark_images(background: int) -> None:
    # Given a uniformly black or white photo
    image = np.full((300, 400, 3), background, np.uint8)
    # When a face and a cup are drawn
    out = annotate(image, [FACE, CUP])
    # Then the input is untouched and the output has the same shape
    assert (image == background).all()
    assert out.shape == image.shape and out.dtype == np.uint8
    # And the box edge carries the label's colour next to a dark outline
    edge = out[80 - 3 : 80 + 4, 100]
    assert any((px == colour_for("face")).all() for px in edge)
    assert (edge.sum(axis=1) < 60).any()
    # And the label tag above the box is filled with the label's colour and has text in it
    tag = out[64:77, 63:115]
    assert (np.all(tag == colour_for("face"), axis=-1)).mean() > 0.3
    assert len(np.unique(tag.reshape(-1, 3), axis=0)) > 3
    # And every landmark is a coloured dot
    for (x, y), colour in zip(FACE.landmarks, [(0, 0, 255), (0, 255, 255), (255, 0, 255), (0, 255, 0), (255, 0, 0)]):
        assert tuple(out[y, x]) == colour


def test_annotate_keeps_tags_inside_the_image_for_boxes_at_the_edge() -> None:
    image = np.full((100, 100, 3), 128, np.uint8)
    det = Detection("person", 0.9, Box(0, 0, 100, 100))
    out = annotate(image, [det])
    # no room above: the tag goes inside the top edge
    assert (np.all(out[2:12, 2:30] == colour_for("person"), axis=-1)).mean() > 0.3


def test_annotate_accepts_gray_images_and_no_detections() -> None:
    gray = np.zeros((50, 60), np.uint8)
    out = annotate(gray, [])
    assert out.shape == (50, 60, 3) and not out.any()


def test_colour_for_is_stable_and_differs_between_labels() -> None:
    assert colour_for("cup") == colour_for("cup")
    assert len({colour_for(x) for x in ("person", "cup", "tie", "motorcycle", "face")}) >= 4
