"""The calibration-set figures of the face stem's sensitivity: largest probability and box-offset differences."""

from __future__ import annotations

import numpy as np

from detectflow.models.sensitivity import output_difference


def _outputs(probs: list[float], offset: float = 0.0) -> tuple[np.ndarray, np.ndarray]:
    p = np.asarray(probs, np.float32)
    conf = np.stack([1 - p, p], axis=-1)[None]
    loc = np.full((1, len(probs), 4), offset, np.float32)
    return loc, conf


def test_output_difference_takes_probabilities_near_faces_and_boxes_of_fp32_faces() -> None:
    # Given fp32 with a face (0.9) and a weak anchor (0.35), and an int8 that moves both and a background one
    reference = [_outputs([0.9, 0.35, 0.01])]
    loc8, conf8 = _outputs([0.8, 0.5, 0.25], offset=0.0)
    loc8[0, 0] = 0.2  # the face's box moves
    loc8[0, 2] = 5.0  # a background anchor's box: not a face in fp32, not counted
    # When compared
    d = output_difference(reference, [(loc8, conf8)])
    # Then the probability figure covers anchors >= 0.3 in either (0.1 and 0.15, not 0.24), the box figure fp32 faces
    assert d == {"probability": 0.15, "box_offset": 0.2}


def test_output_difference_is_zero_without_qualifying_anchors() -> None:
    out = [_outputs([0.01, 0.02])]
    assert output_difference(out, out) == {"probability": 0.0, "box_offset": 0.0}
