"""NanoDet GFL/DFL decoding on synthetic outputs."""

from __future__ import annotations

import numpy as np
import pytest

from detectflow.detectors.postprocess.nanodet import decode_nanodet, distribution_to_distance, nanodet_centres

REG_MAX = 10


def _peaked(distances, reg_max=REG_MAX, sharp=40.0):
    """Logits whose softmax puts (nearly) all mass on each integer distance."""
    logits = np.zeros((4, reg_max + 1))
    for side, d in enumerate(distances):
        logits[side, d] = sharp
    return logits.ravel()


def test_distribution_to_distance_is_the_expected_bin() -> None:
    reg = np.stack([_peaked([0, 3, 10, 5]), np.zeros(44)])
    d = distribution_to_distance(reg, REG_MAX)
    np.testing.assert_allclose(d[0], [0, 3, 10, 5], atol=1e-9)
    np.testing.assert_allclose(d[1], [5, 5, 5, 5])  # uniform: the middle bin


@pytest.mark.parametrize(("offset", "first"), [(0.0, [0, 0]), (0.5, [4, 4])])
def test_nanodet_centres_row_major_with_offset(offset: float, first: list[float]) -> None:
    c = nanodet_centres(416, 416, 8, offset)
    assert c.shape == (52 * 52, 2)
    np.testing.assert_allclose(c[0], first)
    np.testing.assert_allclose(c[1] - c[0], [8, 0])
    np.testing.assert_allclose(c[52] - c[0], [0, 8])


def _outputs(size=64, strides=(8, 16, 32), classes=3):
    scores = [np.zeros(((size // s) ** 2, classes)) for s in strides]
    dists = [np.zeros(((size // s) ** 2, 4 * (REG_MAX + 1))) for s in strides]
    return scores, dists


def test_decode_nanodet_places_box_around_the_cell_point() -> None:
    # Given a 64x64 input; stride 16 cell (x=2, y=1) sees class 2 with distances 1,1,2,3 strides
    scores, dists = _outputs()
    cell = 1 * 4 + 2
    scores[1][cell, 2] = 0.9
    dists[1][cell] = _peaked([1, 1, 2, 3])
    # and a weaker duplicate of the same class from stride 8 that overlaps it
    scores[0][3 * 8 + 4, 2] = 0.5
    dists[0][3 * 8 + 4] = _peaked([2, 2, 4, 6])
    # When decoded with the cell corner as its point
    boxes, sc, cls = decode_nanodet(scores, dists, 64, 64, score_threshold=0.35, cell_offset=0.0)
    # Then one box: (32 - 16, 16 - 16, 32 + 32, 16 + 48) clipped to the input
    assert cls.tolist() == [2]
    np.testing.assert_allclose(sc, [0.9])
    np.testing.assert_allclose(boxes, [[16, 0, 64, 64]], atol=1e-6)


def test_decode_nanodet_cell_offset_shifts_by_half_a_stride() -> None:
    scores, dists = _outputs()
    scores[2][0, 0] = 0.8
    dists[2][0] = _peaked([0, 0, 1, 1])
    boxes, _, _ = decode_nanodet(scores, dists, 64, 64, cell_offset=0.5)
    np.testing.assert_allclose(boxes, [[16, 16, 48, 48]], atol=1e-6)


def test_decode_nanodet_keeps_several_classes_of_one_cell_and_drops_weak_ones() -> None:
    scores, dists = _outputs()
    scores[0][10] = [0.6, 0.3, 0.7]
    dists[0][10] = _peaked([1, 1, 1, 1])
    boxes, sc, cls = decode_nanodet(scores, dists, 64, 64, score_threshold=0.35)
    assert cls.tolist() == [2, 0]
    np.testing.assert_allclose(sc, [0.7, 0.6])
    empty = decode_nanodet(*_outputs(), 64, 64)
    assert empty[0].shape == (0, 4)


def test_decode_nanodet_rejects_wrong_cell_count() -> None:
    scores, dists = _outputs()
    with pytest.raises(ValueError, match="cells"):
        decode_nanodet(scores, dists, 128, 128)
