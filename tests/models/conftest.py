"""Built models for the model tier: built once per session by the same code as `detectflow models build`."""

from __future__ import annotations

from pathlib import Path

import pytest

from detectflow.config import Settings, Task
from detectflow.detectors import load_detector, load_embedder
from detectflow.detectors.base import Detector
from detectflow.detectors.onnx_embed import OnnxFaceEmbedder
from detectflow.models.build import build_models


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    here = Path(__file__).parent
    for item in items:
        if here in Path(item.fspath).parents:
            item.add_marker(pytest.mark.models)


@pytest.fixture(scope="session")
def model_dir() -> Path:
    """The model directory (DETECTFLOW_MODEL_DIR or the default cache), every model built in it.

    Building is idempotent: when the cards match the files on disk this takes milliseconds.
    """
    path = Settings().model_dir.expanduser()
    build_models(path)
    return path


@pytest.fixture(scope="session")
def model_settings(model_dir: Path) -> Settings:
    """CPU, the fp32 files, 2 intra-op threads, default thresholds, the built models."""
    return Settings(model_dir=model_dir, device="cpu", intra_op_threads=2, cpu_precision="fp32")


@pytest.fixture(scope="session")
def int8_settings(model_settings: Settings) -> Settings:
    """As ``model_settings``, with the int8 files whatever the cards' default."""
    return model_settings.model_copy(update={"cpu_precision": "int8"})


@pytest.fixture(scope="session")
def face_detector(model_settings: Settings) -> Detector:
    return load_detector(Task.face, model_settings)


@pytest.fixture(scope="session")
def object_detector(model_settings: Settings) -> Detector:
    return load_detector(Task.object, model_settings)


@pytest.fixture(scope="session")
def face_detector_int8(int8_settings: Settings) -> Detector:
    return load_detector(Task.face, int8_settings)


@pytest.fixture(scope="session")
def object_detector_int8(int8_settings: Settings) -> Detector:
    return load_detector(Task.object, int8_settings)


@pytest.fixture(scope="session")
def embedder(model_settings: Settings) -> OnnxFaceEmbedder:
    return load_embedder(model_settings)
