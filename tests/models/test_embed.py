"""The converted dlib embedder against dlib's own runtime (dlib-bin), in batches, and its fp16 variant."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from detectflow.config import Settings
from detectflow.detectors.align import align_faces
from detectflow.detectors.base import Detector
from detectflow.detectors.onnx_embed import OnnxFaceEmbedder
from detectflow.detectors.runtime import create_session
from detectflow.models import sources
from detectflow.models.build import FP16_TOLERANCE
from detectflow.models.cards import load_card
from tests.support.images import image_bgr
from tests.support.media import FACE_PHOTOS, face_photo

SHIPPED_FACES = ("astronaut", "grace_hopper", "camera")


@pytest.fixture(scope="module")
def chips(face_detector: Detector) -> np.ndarray:
    """Aligned chips of every face photo: face_recognition's test images and the wheels' photos."""
    out = []
    for name in FACE_PHOTOS:
        img = face_photo(name)
        out.append(align_faces(img, [face_detector.detect(img)[0].landmarks])[0])
    for name in SHIPPED_FACES:
        img = image_bgr(name)
        out.append(align_faces(img, [face_detector.detect(img)[0].landmarks])[0])
    return np.stack(out)


@pytest.fixture(scope="module")
def dlib_model(tmp_path_factory: pytest.TempPathFactory):
    import dlib  # dlib-bin, in the test extra

    sdist = sources.fetch(sources.DLIB_MODELS_SDIST)
    path = tmp_path_factory.mktemp("dlib") / "dlib_face_recognition_resnet_model_v1.dat"
    path.write_bytes(sources.read_tar_member(sdist, sources.DLIB_RESNET_MEMBER, sources.DLIB_RESNET_SHA256))
    return dlib.face_recognition_model_v1(str(path))


def test_embedder_matches_dlibs_runtime_on_aligned_faces(
    embedder: OnnxFaceEmbedder, dlib_model, chips: np.ndarray
) -> None:
    # Given aligned chips of 10 real faces; when dlib and the converted graph embed them
    ref = np.array([dlib_model.compute_face_descriptor(np.ascontiguousarray(c)) for c in chips])
    ours = embedder.embed(chips)
    # Then every component agrees within 1e-4 (measured: about 3e-7, float32 rounding)
    worst = float(np.abs(ref - ours).max())
    print(f"\nparity with dlib-bin on {len(chips)} faces: max abs diff {worst:.2e}")
    assert ours.shape == (len(chips), 128)
    assert worst <= 1e-4
    # and the vectors are dlib's kind: not unit length, norms near 1.3
    assert np.all((np.linalg.norm(ours, axis=1) > 1.0) & (np.linalg.norm(ours, axis=1) < 1.6))


def test_embedder_gives_the_same_vector_in_a_batch_as_alone(embedder: OnnxFaceEmbedder, chips: np.ndarray) -> None:
    batch = embedder.embed(chips[:8])
    alone = np.concatenate([embedder.embed(c) for c in chips[:8]])
    np.testing.assert_allclose(batch, alone, atol=1e-5)


def test_embedder_fp16_gpu_variant_stays_within_tolerance_on_faces(
    embedder: OnnxFaceEmbedder, model_settings: Settings, chips: np.ndarray
) -> None:
    # Given the GPU variant run on CPU
    card = embedder.card
    assert card.files["gpu"].precision == "fp16"
    session = create_session(model_settings.model_dir / card.files["gpu"].path, ["CPUExecutionProvider"], 2)
    fp16 = OnnxFaceEmbedder(session, card, embedder.info)
    # When both embed the same real faces
    a, b = embedder.embed(chips), fp16.embed(chips)
    per_component = float(np.abs(a - b).max())
    distance = float(np.linalg.norm(a - b, axis=1).max())
    print(f"\nfp16 drift on {len(chips)} faces: component {per_component:.2e}, distance {distance:.2e}")
    # Then the drift is within the build's tolerance, far below the 0.5 / 0.6 decision thresholds
    assert per_component <= FP16_TOLERANCE["embedding"]
    assert distance <= FP16_TOLERANCE["embedding_distance"]


def test_embedder_card_records_the_parse_and_the_parity(model_dir: Path) -> None:
    card = load_card(model_dir / "dlib-resnet-v1.json")
    v = card.verification
    assert (card.task, card.postprocessor, card.licence) == ("embed", "embedding", "CC0-1.0")
    assert (card.source.package, card.source.version) == ("face-recognition-models", "0.3.0")
    assert card.source.member_sha256 == sources.DLIB_RESNET_SHA256
    # a correct parse uses every byte of the 22,466,066-byte file
    assert v["parse"]["bytes_read"] == v["parse"]["file_bytes"] == 22_466_066
    assert v["parse"]["parameters"] == 5_614_592
    assert v["parity_max_abs_diff"]["embedding"] <= 1e-5
    assert v["dlib_parity_max_abs_diff"] is None or v["dlib_parity_max_abs_diff"] <= 1e-4
    assert card.input.size == (150, 150) and card.input.color == "RGB"
    assert card.preprocessing.mean == pytest.approx((122.782, 117.001, 104.298), abs=1e-4)
    assert card.preprocessing.std == (256.0, 256.0, 256.0)


def test_embedder_graph_uses_standard_ops_and_a_dynamic_batch_axis(model_dir: Path) -> None:
    import onnx

    for name in ("dlib-resnet-v1.onnx", "dlib-resnet-v1.gpu.onnx"):
        model = onnx.load(str(model_dir / name))
        ops = {n.op_type for n in model.graph.node}
        assert all(n.domain in ("", "ai.onnx") for n in model.graph.node), name
        assert ops <= {"Conv", "Mul", "Add", "Relu", "MaxPool", "AveragePool", "Pad", "GlobalAveragePool",
                       "Flatten", "MatMul", "Cast"}, ops
        (inp,), (out,) = model.graph.input, model.graph.output
        assert inp.type.tensor_type.elem_type == out.type.tensor_type.elem_type == onnx.TensorProto.FLOAT
        assert inp.type.tensor_type.shape.dim[0].dim_param == "N"
        assert [d.dim_value for d in inp.type.tensor_type.shape.dim[1:]] == [3, 150, 150]
        assert out.type.tensor_type.shape.dim[1].dim_value == 128
