"""Face alignment: the similarity fit on known points and the warp onto dlib's template."""

from __future__ import annotations

import numpy as np
import pytest
from skimage.transform import SimilarityTransform

from detectflow.detectors.align import DLIB_TEMPLATE, align_faces, chip_template, estimate_similarity


def _similarity(angle_deg: float, scale: float, tx: float, ty: float) -> np.ndarray:
    a = np.deg2rad(angle_deg)
    rot = scale * np.array([[np.cos(a), -np.sin(a)], [np.sin(a), np.cos(a)]])
    return np.hstack([rot, [[tx], [ty]]])


def _apply(m: np.ndarray, pts: np.ndarray) -> np.ndarray:
    return pts @ m[:, :2].T + m[:, 2]


def test_chip_template_maps_dlibs_points_with_a_quarter_padding() -> None:
    pts = chip_template(150, 0.25)
    np.testing.assert_allclose(pts, (0.25 + DLIB_TEMPLATE) / 1.5 * 150)
    # left eye of the template at (0.22553 + 0.25) / 1.5 * 150 = 47.553 px
    assert pts[0] == pytest.approx([47.553, 46.599])


def test_estimate_similarity_recovers_a_known_transform_exactly() -> None:
    # Given landmarks that are an exact similarity image of the template (rotated, scaled, shifted)
    truth = _similarity(23.0, 2.7, 310.0, 95.0)
    dst = chip_template()
    src = _apply(np.linalg.inv(np.vstack([truth, [0, 0, 1]]))[:2], dst)
    # When the transform back onto the template is estimated
    m = estimate_similarity(src, dst)
    # Then it is the exact inverse: every landmark lands on its template point
    np.testing.assert_allclose(_apply(m, src), dst, atol=1e-9)
    np.testing.assert_allclose(m, truth, atol=1e-9)


def test_estimate_similarity_is_least_squares_like_skimage_and_batches() -> None:
    # Given noisy landmarks of four faces
    rng = np.random.default_rng(0)
    dst = chip_template()
    src = np.stack([_apply(_similarity(a, s, 200, 100), dst) for a, s in ((0, 1), (-40, 0.5), (90, 3), (170, 1.2))])
    src += rng.normal(0, 2.0, src.shape)
    # When estimated in one batch
    batch = estimate_similarity(src, dst)
    # Then each equals skimage's Umeyama fit and the one-face call
    assert batch.shape == (4, 2, 3)
    for points, m in zip(src, batch):
        ref = SimilarityTransform.from_estimate(points, dst) if hasattr(SimilarityTransform, "from_estimate") else None
        if ref is None:
            ref = SimilarityTransform()
            ref.estimate(points, dst)
        np.testing.assert_allclose(m, ref.params[:2], atol=1e-9)
        np.testing.assert_allclose(estimate_similarity(points, dst), m, atol=1e-12)


def test_estimate_similarity_never_mirrors() -> None:
    # Given landmarks of a mirrored face (left and right swapped by a reflection)
    dst = chip_template()
    src = dst * np.array([-1.0, 1.0]) + 400
    m = estimate_similarity(src, dst)
    # Then the fit is still a rotation with scale (positive determinant), not a reflection
    assert np.linalg.det(m[:, :2]) > 0


def test_align_faces_puts_the_landmarks_on_the_template_in_rgb() -> None:
    # Given a BGR photo with five coloured dots at a rotated, scaled face's landmarks
    truth = _similarity(-15.0, 0.4, 20.0, 30.0)  # chip -> image
    landmarks = _apply(truth, chip_template())
    image = np.zeros((200, 260, 3), np.uint8)
    image[..., 0] = 255  # pure blue in BGR
    for x, y in landmarks:
        image[int(round(y)) - 1:int(round(y)) + 2, int(round(x)) - 1:int(round(x)) + 2] = (0, 255, 0)
    # When the face is aligned
    chips = align_faces(image, landmarks[None])
    # Then the chip is 150x150 RGB (the background is blue in the third channel) and each dot
    # lands within 1.5 px of its template point
    assert chips.shape == (1, 150, 150, 3) and chips.dtype == np.uint8
    chip = chips[0]
    assert chip[5, 75, 2] == 255 and chip[5, 75, 0] == 0
    green = (chip[..., 1] > 100) & (chip[..., 2] < 100)
    ys, xs = np.nonzero(green)
    for tx, ty in chip_template():
        near = (np.abs(xs - tx) < 6) & (np.abs(ys - ty) < 6)
        assert near.any()
        assert abs(xs[near].mean() - tx) < 1.5 and abs(ys[near].mean() - ty) < 1.5


def test_align_faces_handles_no_faces_and_several_faces() -> None:
    image = np.random.default_rng(1).integers(0, 256, (120, 160, 3), dtype=np.uint8)
    assert align_faces(image, np.zeros((0, 5, 2))).shape == (0, 150, 150, 3)
    faces = np.stack([_apply(_similarity(0, 0.5, 10, 10), chip_template()),
                      _apply(_similarity(10, 0.3, 90, 40), chip_template())])
    chips = align_faces(image, faces)
    assert chips.shape == (2, 150, 150, 3)
    np.testing.assert_array_equal(chips[1], align_faces(image, faces[1:])[0])
