"""RetinaFace on shipped photos: golden boxes, the mosaic, large images, landmarks."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from detectflow.detectors.base import Detector
from tests.models.golden import best_iou, box_of, iou_xywh, load_golden
from tests.models.mosaic import face_mosaic
from tests.support.images import image_bgr

GOLDEN = load_golden("faces")


@pytest.mark.parametrize("name", sorted(GOLDEN["images"]))
def test_face_detector_matches_golden_boxes(face_detector: Detector, name: str) -> None:
    # Given a shipped photo and its golden faces
    expected = GOLDEN["images"][name]
    # When faces are detected at the default threshold
    dets = face_detector.detect(image_bgr(name))
    # Then exactly the golden faces are found, in the same places
    assert len(dets) == len(expected), [box_of(d) for d in dets]
    for e in expected:
        assert best_iou(e, dets) >= GOLDEN["min_iou"]
    assert [d.score for d in dets] == sorted((d.score for d in dets), reverse=True)


def test_face_detector_reports_landmarks_inside_the_face(face_detector: Detector) -> None:
    (det,) = face_detector.detect(image_bgr("astronaut"))
    assert det.label == "face" and det.score > 0.99
    assert det.landmarks is not None and len(det.landmarks) == 5
    b = det.box
    for x, y in det.landmarks:
        assert b.x <= x <= b.x + b.width and b.y <= y <= b.y + b.height
    (rx, ry), (lx, ly), (nx, ny), (mrx, mry), (mlx, mly) = det.landmarks
    assert rx < nx < lx  # eyes either side of the nose (image left to right)
    assert max(ry, ly) < ny < min(mry, mly)  # nose between eyes and mouth


def test_face_detector_finds_every_face_of_the_mosaic(face_detector: Detector) -> None:
    # Given seven faces, 35 to 170 px high, from three photos, two mirrored
    sources = {n: GOLDEN["images"][n][0]["box"] for n in ("astronaut", "grace_hopper", "camera")}
    mosaic, expected = face_mosaic(sources)
    # When detected at the default threshold (0.5; the 1450 px mosaic is shrunk to 1024 first)
    dets = face_detector.detect(mosaic)
    # Then each face is found once, where it was placed, and nothing else
    assert len(dets) == len(expected)
    for e in expected:
        assert max(iou_xywh(e, box_of(d)) for d in dets) >= 0.75


@pytest.mark.parametrize("factor", [2.0, 3.5])
def test_face_detector_maps_boxes_of_large_images_back_to_their_pixels(face_detector: Detector, factor: float) -> None:
    # Given the astronaut enlarged beyond the 1024 px cap
    small = image_bgr("astronaut")
    big = cv2.resize(small, None, fx=factor, fy=factor, interpolation=cv2.INTER_CUBIC)
    # When detected
    (det,) = face_detector.detect(big)
    (ref,) = face_detector.detect(small)
    # Then the box is in the big image's pixels: the small image's box times the factor
    scaled = [v * factor for v in box_of(ref)]
    assert iou_xywh(box_of(det), scaled) >= 0.9
    assert np.allclose(np.array(det.landmarks) / factor, ref.landmarks, atol=0.05 * ref.box.width)


def test_face_detector_shrinks_to_max_side_and_maps_back_exactly(face_detector: Detector) -> None:
    # Given a 1792 px image and the same image shrunk by hand to the 1024 px cap
    big = cv2.resize(image_bgr("astronaut"), (1792, 1792), interpolation=cv2.INTER_CUBIC)
    assert face_detector.card.preprocessing.max_side == 1024
    shrunk = cv2.resize(big, (1024, 1024), interpolation=cv2.INTER_AREA)
    # When both are detected
    (a,) = face_detector.detect(big)
    (b,) = face_detector.detect(shrunk)
    # Then the big image's box is the shrunk one's scaled by exactly 1792 / 1024
    k = 1792 / 1024
    np.testing.assert_allclose(box_of(a), [v * k for v in box_of(b)], rtol=1e-9)
    np.testing.assert_allclose(np.array(a.landmarks), np.array(b.landmarks) * k, rtol=1e-9)


def test_face_detector_accepts_gray_and_bgra_images(face_detector: Detector) -> None:
    img = image_bgr("astronaut")
    gray = cv2.cvtColor(img, cv2.COLOR_BGR2GRAY)
    assert len(face_detector.detect(gray)) == 1
    assert len(face_detector.detect(cv2.cvtColor(img, cv2.COLOR_BGR2BGRA))) == 1
