"""Bring your own YOLOv8/YOLO11 model: a small ONNX graph with known boxes, through the registry."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from detectflow.config import Settings, Task
from detectflow.detectors import load_detector
from tests.models.golden import box_of

SIZE = 64
ANCHORS = 84  # 8x8 + 4x4 + 2x2 cells, as a 64 px YOLOv8 head has


def _yolo_head(boxes_cxcywh: list[list[float]], scores: list[list[float]], num_classes: int) -> np.ndarray:
    head = np.zeros((1, 4 + num_classes, ANCHORS), np.float32)
    head[0, :4, :] = [[SIZE / 2], [SIZE / 2], [4], [4]]
    for i, (b, s) in enumerate(zip(boxes_cxcywh, scores)):
        head[0, :4, 10 + 9 * i] = b
        head[0, 4:, 10 + 9 * i] = s
    return head


def _write_yolo_graph(path: Path, head: np.ndarray) -> None:
    """``images [1,3,64,64] -> output0 [1, 4+C, 84]``: the head, plus 0 x mean(images) so it depends on the input."""
    nodes = [
        helper.make_node("ReduceMean", ["images"], ["m"], keepdims=0),
        helper.make_node("Mul", ["m", "zero"], ["z"]),
        helper.make_node("Add", ["head", "z"], ["output0"]),
    ]
    graph = helper.make_graph(
        nodes,
        "tiny_yolo_head",
        [helper.make_tensor_value_info("images", TensorProto.FLOAT, [1, 3, SIZE, SIZE])],
        [helper.make_tensor_value_info("output0", TensorProto.FLOAT, list(head.shape))],
        [numpy_helper.from_array(head, "head"), numpy_helper.from_array(np.zeros((), np.float32), "zero")],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    onnx.save(model, str(path))


@pytest.fixture
def yolo_file(tmp_path: Path) -> Path:
    # Three boxes in network pixels: class 1 at 0.9, class 0 at 0.6, and a weak one at 0.2
    head = _yolo_head(
        [[16, 24, 8, 12], [40, 40, 20, 10], [50, 10, 4, 4]],
        [[0.05, 0.9, 0.0], [0.6, 0.1, 0.0], [0.0, 0.0, 0.2]],
        num_classes=3,
    )
    path = tmp_path / "tiny-yolo.onnx"
    _write_yolo_graph(path, head)
    return path


def test_yolo_model_with_card_maps_known_boxes_back_through_the_letterbox(yolo_file: Path, tmp_path: Path) -> None:
    # Given a user ONNX file with a hand-written card beside it
    (tmp_path / "tiny-yolo.json").write_text(json.dumps(
        {"name": "tiny-yolo", "postprocessor": "yolo", "labels": ["cat", "dog", "kite"], "input": {"size": [SIZE, SIZE]}}
    ))
    settings = Settings(model_dir=tmp_path / "none", object_model=str(yolo_file), object_score_threshold=0.25)
    detector = load_detector(Task.object, settings)
    # When a 200x100 image is detected (letterbox: scale 0.32, 16 px of padding above and below)
    dets = detector.detect(np.zeros((100, 200, 3), np.uint8))
    # Then the two strong boxes come back in the image's own pixels, best first, with the card's labels
    assert [d.label for d in dets] == ["dog", "cat"]
    np.testing.assert_allclose([d.score for d in dets], [0.9, 0.6], rtol=1e-6)
    s, pad = SIZE / 200, (SIZE - 100 * SIZE / 200) / 2
    np.testing.assert_allclose(box_of(dets[0]), [(16 - 4) / s, (24 - 6 - pad) / s, 8 / s, 12 / s], atol=1e-6)
    np.testing.assert_allclose(box_of(dets[1]), [(40 - 10) / s, (40 - 5 - pad) / s, 20 / s, 10 / s], atol=1e-6)
    assert detector.info.name == "tiny-yolo" and detector.info.provider == "CPUExecutionProvider"


def test_yolo_model_named_by_postprocessor_needs_no_card(yolo_file: Path, tmp_path: Path) -> None:
    # Given only the ONNX file, named as "yolo:<path>"; the input size comes from the graph
    settings = Settings(model_dir=tmp_path, object_model=f"yolo:{yolo_file}", object_score_threshold=0.25)
    detector = load_detector(Task.object, settings)
    dets = detector.detect(np.zeros((SIZE, SIZE, 3), np.uint8))
    # Then boxes are in pixels of the (unscaled) image and labels default to class_<id>
    assert [d.label for d in dets] == ["class_1", "class_0"]
    np.testing.assert_allclose(box_of(dets[0]), [12, 18, 8, 12], atol=1e-6)
    detector.warmup()


def test_yolo_model_with_80_classes_gets_coco_labels(tmp_path: Path) -> None:
    scores = np.zeros((1, 80))
    scores[0, 41] = 0.8  # cup
    path = tmp_path / "coco.onnx"
    _write_yolo_graph(path, _yolo_head([[32, 32, 10, 10]], scores.tolist(), num_classes=80))
    detector = load_detector(Task.object, Settings(model_dir=tmp_path, object_model=f"yolo:{path}"))
    (det,) = detector.detect(np.zeros((SIZE, SIZE, 3), np.uint8))
    assert det.label == "cup"
