"""Resolving a configured model to its card, and choosing execution providers."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest

from detectflow.config import Settings, Task
from detectflow.detectors import ModelNotFoundError, load_detector
from detectflow.detectors.registry import resolve_model
from detectflow.detectors.runtime import choose_providers


def test_load_detector_missing_builtin_says_to_build(tmp_path: Path) -> None:
    settings = Settings(model_dir=tmp_path)
    with pytest.raises(ModelNotFoundError, match="detectflow models build"):
        load_detector(Task.face, settings)


def test_resolve_model_builtin_name_reads_card_in_model_dir(tmp_path: Path) -> None:
    (tmp_path / "m.json").write_text(json.dumps({"name": "m", "postprocessor": "yolo",
                                                  "files": {"cpu": {"path": "m.onnx"}}}))
    card, base = resolve_model("m", tmp_path)
    assert card.name == "m" and base == tmp_path and card.files["cpu"].path == "m.onnx"


@pytest.mark.parametrize("card_name", ["det.json", "det.onnx.json"])
def test_resolve_model_user_onnx_uses_card_beside_it(tmp_path: Path, card_name: str) -> None:
    onnx_file = tmp_path / "det.onnx"
    onnx_file.write_bytes(b"not really onnx")
    (tmp_path / card_name).write_text(json.dumps({"name": "mine", "postprocessor": "yolo", "labels": ["a", "b"]}))
    card, base = resolve_model(str(onnx_file), tmp_path / "elsewhere")
    assert (card.name, card.labels, card.files["cpu"].path, base) == ("mine", ["a", "b"], "det.onnx", tmp_path)


def test_resolve_model_user_onnx_without_card_explains_both_ways(tmp_path: Path) -> None:
    onnx_file = tmp_path / "det.onnx"
    onnx_file.write_bytes(b"x")
    with pytest.raises(ModelNotFoundError, match="yolo:"):
        resolve_model(str(onnx_file), tmp_path)
    with pytest.raises(ModelNotFoundError, match="not found"):
        resolve_model(str(tmp_path / "missing.onnx"), tmp_path)


def test_resolve_model_named_postprocessor_needs_no_card(tmp_path: Path) -> None:
    onnx_file = tmp_path / "yolo11n.onnx"
    onnx_file.write_bytes(b"x")
    card, _ = resolve_model(f"yolo:{onnx_file}", tmp_path)
    assert card.postprocessor == "yolo" and card.preprocessing.resize == "letterbox"
    card, _ = resolve_model(f"retinaface:{onnx_file}", tmp_path)
    assert card.labels == ["face"] and card.preprocessing.resize == "none"


def test_choose_providers_prefers_tensorrt_then_cuda_then_cpu() -> None:
    all_three = ["TensorrtExecutionProvider", "CUDAExecutionProvider", "CPUExecutionProvider"]
    assert choose_providers("auto", all_three) == all_three
    assert choose_providers("gpu", ["CUDAExecutionProvider", "CPUExecutionProvider"])[0] == "CUDAExecutionProvider"
    assert choose_providers("cpu", all_three) == ["CPUExecutionProvider"]


def test_choose_providers_falls_back_to_cpu_with_a_log_line(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.INFO, logger="detectflow.detectors.runtime"):
        assert choose_providers("gpu", ["CPUExecutionProvider"]) == ["CPUExecutionProvider"]
    assert "falling back to CPUExecutionProvider" in caplog.text
    assert caplog.records[-1].levelno == logging.WARNING


def _card_with(files: dict, cpu_precision: str = "fp32"):
    from detectflow.models.cards import ModelCard

    return ModelCard(name="m", postprocessor="retinaface", cpu_precision=cpu_precision,
                     files={k: {"path": f"m.{k}.onnx"} for k in files})


@pytest.mark.parametrize(
    ("files", "card_default", "gpu", "setting", "expected"),
    [
        (("cpu", "gpu", "cpu_int8"), "int8", True, "auto", "gpu"),  # GPU keeps its fp16 file
        (("cpu", "gpu", "cpu_int8"), "int8", False, "auto", "cpu_int8"),  # report passed: int8 on CPU
        (("cpu", "gpu", "cpu_int8"), "fp32", False, "auto", "cpu"),  # report failed: fp32
        (("cpu", "gpu", "cpu_int8"), "fp32", False, "int8", "cpu_int8"),  # asked for explicitly
        (("cpu", "gpu", "cpu_int8"), "int8", False, "fp32", "cpu"),  # one setting away
        (("cpu",), "fp32", False, "int8", "cpu"),  # a user card without an int8 file
        (("cpu",), "fp32", True, "auto", "cpu"),  # nor a GPU file
    ],
)
def test_choose_variant_follows_device_card_and_setting(files, card_default, gpu, setting, expected) -> None:
    from detectflow.detectors.registry import choose_variant

    assert choose_variant(_card_with(files, card_default), gpu, setting) == expected
