"""Resizing and the exact way back to original pixels."""

from __future__ import annotations

import numpy as np
import pytest

from detectflow.detectors.postprocess.letterbox import letterbox, shrink_to_max_side, stretch


def _forward(tf, boxes):
    b = np.asarray(boxes, float).copy()
    b[:, [0, 2]] = b[:, [0, 2]] * tf.scale_x + tf.pad_x
    b[:, [1, 3]] = b[:, [1, 3]] * tf.scale_y + tf.pad_y
    return b


@pytest.mark.parametrize(("h", "w"), [(480, 640), (640, 480), (333, 517), (100, 100), (1000, 37)])
def test_letterbox_pads_centred_and_maps_boxes_back_exactly(h: int, w: int) -> None:
    # Given a white image of any aspect ratio
    image = np.full((h, w, 3), 255, np.uint8)
    # When it is letterboxed into 416x416
    out, tf = letterbox(image, (416, 416), pad_value=114)
    # Then the image fills one side fully, the padding is grey and centred
    assert out.shape == (416, 416, 3)
    nw, nh = round(w * tf.scale_x), round(h * tf.scale_y)
    assert max(nw, nh) == 416
    assert tf.pad_x == (416 - nw) // 2 and tf.pad_y == (416 - nh) // 2
    assert (out[int(tf.pad_y) : int(tf.pad_y) + nh, int(tf.pad_x) : int(tf.pad_x) + nw] == 255).all()
    if tf.pad_x >= 1:
        assert (out[:, 0] == 114).all()
    # And a box mapped into the network input comes back to the same original pixels
    boxes = np.array([[0, 0, w, h], [w * 0.25, h * 0.1, w * 0.5, h * 0.9]])
    np.testing.assert_allclose(tf.boxes_to_original(_forward(tf, boxes)), boxes, atol=1e-9)


def test_stretch_maps_back_per_axis() -> None:
    image = np.zeros((300, 451, 3), np.uint8)
    out, tf = stretch(image, (416, 416))
    assert out.shape == (416, 416, 3)
    boxes = np.array([[10.0, 20.0, 400.0, 290.0]])
    np.testing.assert_allclose(tf.boxes_to_original(_forward(tf, boxes)), boxes, atol=1e-9)


def test_transform_clips_boxes_to_the_image_but_not_points() -> None:
    _, tf = stretch(np.zeros((100, 200, 3), np.uint8), (50, 50))
    assert tf.boxes_to_original(np.array([[-5, -5, 60, 60]])).tolist() == [[0, 0, 200, 100]]
    np.testing.assert_allclose(tf.points_to_original(np.array([[-5.0, 60.0]])), [[-20.0, 120.0]])


def test_shrink_to_max_side_only_shrinks() -> None:
    small = np.zeros((300, 400, 3), np.uint8)
    out, tf = shrink_to_max_side(small, 1024)
    assert out is small and (tf.scale_x, tf.scale_y) == (1.0, 1.0)
    big = np.zeros((1500, 3000, 3), np.uint8)
    out, tf = shrink_to_max_side(big, 1024)
    assert out.shape == (512, 1024, 3)
    np.testing.assert_allclose(tf.boxes_to_original(np.array([[0, 0, 1024, 512]])), [[0, 0, 3000, 1500]])
    out, _ = shrink_to_max_side(big, None)
    assert out is big
