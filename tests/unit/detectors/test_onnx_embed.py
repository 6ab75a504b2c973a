"""OnnxFaceEmbedder on a tiny graph written here: normalisation from the card, one run per batch, loading."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper

from detectflow.config import Settings, Task
from detectflow.detectors import ModelNotFoundError, load_detector, load_embedder
from detectflow.detectors.onnx_embed import OnnxFaceEmbedder, embedding_distances

MEAN = (122.782, 117.001, 104.298)


def _mean_graph(path: Path, size: int = 6) -> None:
    """[N, 3, size, size] -> [N, 3]: the per-channel mean, so the output shows the normalisation."""
    nodes = [helper.make_node("GlobalAveragePool", ["chip"], ["pooled"]),
             helper.make_node("Flatten", ["pooled"], ["embedding"], axis=1)]
    graph = helper.make_graph(nodes, "mean", [helper.make_tensor_value_info("chip", TensorProto.FLOAT, ["N", 3, size, size])],
                              [helper.make_tensor_value_info("embedding", TensorProto.FLOAT, ["N", 3])])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.save(model, str(path))


def _card(path: Path, size: int = 6) -> None:
    path.write_text(json.dumps({
        "name": "tiny-embed", "task": "embed", "postprocessor": "embedding",
        "input": {"name": "chip", "size": [size, size], "color": "RGB"},
        "preprocessing": {"resize": "none", "mean": MEAN, "std": [256, 256, 256]},
        "postprocessor_options": {"output": "embedding", "dimension": 3},
        "files": {"cpu": {"path": "tiny-embed.onnx"}},
    }))


@pytest.fixture
def embedder(tmp_path: Path) -> OnnxFaceEmbedder:
    _mean_graph(tmp_path / "tiny-embed.onnx")
    _card(tmp_path / "tiny-embed.json")
    return load_embedder(Settings(model_dir=tmp_path, embed_model="tiny-embed", device="cpu", intra_op_threads=1))


def test_embed_normalises_rgb_chips_with_the_cards_mean_and_std(embedder: OnnxFaceEmbedder) -> None:
    # Given two chips of one flat RGB colour each
    chips = np.zeros((2, 6, 6, 3), np.uint8)
    chips[0] = (200, 100, 50)
    chips[1] = (0, 255, 128)
    # When embedded
    out = embedder.embed(chips)
    # Then each channel was (x - mean) / 256, in RGB order, in one batch
    expected = (chips[:, 0, 0].astype(np.float64) - np.array(MEAN)) / 256
    assert out.shape == (2, 3) and out.dtype == np.float32
    np.testing.assert_allclose(out, expected, atol=1e-6)


def test_embed_takes_one_chip_an_empty_batch_and_rejects_wrong_sizes(embedder: OnnxFaceEmbedder) -> None:
    assert embedder.embed(np.zeros((6, 6, 3), np.uint8)).shape == (1, 3)
    assert embedder.embed(np.zeros((0, 6, 6, 3), np.uint8)).shape == (0, 3)
    with pytest.raises(ValueError, match="expected chips of shape"):
        embedder.embed(np.zeros((1, 7, 7, 3), np.uint8))
    embedder.warmup()
    assert embedder.info.name == "tiny-embed" and embedder.info.provider == "CPUExecutionProvider"


def test_load_embedder_refuses_a_detector_card_and_load_detector_an_embedder(tmp_path: Path) -> None:
    _mean_graph(tmp_path / "tiny-embed.onnx")
    _card(tmp_path / "tiny-embed.json")
    (tmp_path / "det.json").write_text(json.dumps({"name": "det", "postprocessor": "yolo",
                                                    "files": {"cpu": {"path": "tiny-embed.onnx"}}}))
    with pytest.raises(ValueError, match="postprocessor 'embedding'"):
        load_embedder(Settings(model_dir=tmp_path, embed_model="det", device="cpu"))
    with pytest.raises(ValueError, match="is an embedder"):
        load_detector(Task.face, Settings(model_dir=tmp_path, face_model="tiny-embed", device="cpu"))


def test_load_embedder_missing_builtin_says_to_build(tmp_path: Path) -> None:
    with pytest.raises(ModelNotFoundError, match="detectflow models build"):
        load_embedder(Settings(model_dir=tmp_path, device="cpu"))


def test_embedding_distances_are_euclidean_between_all_pairs() -> None:
    rng = np.random.default_rng(0)
    a, b = rng.normal(size=(4, 128)), rng.normal(size=(3, 128))
    d = embedding_distances(a, b)
    expected = np.linalg.norm(a[:, None, :] - b[None, :, :], axis=2)
    assert d.shape == (4, 3)
    np.testing.assert_allclose(d, expected, rtol=1e-5)
    assert np.allclose(np.diag(embedding_distances(a, a)), 0, atol=1e-3)
