"""Model cards: validation, round trip and the idempotence check."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pydantic
import pytest

from detectflow.models.cards import ModelCard, ModelFile, card_is_current, load_card, write_card


def _card(tmp_path: Path, data: bytes = b"onnx bytes") -> tuple[ModelCard, Path]:
    (tmp_path / "m.onnx").write_bytes(data)
    card = ModelCard(
        name="m", task="object", postprocessor="yolo", labels=["a"],
        files={"cpu": ModelFile(path="m.onnx", sha256=hashlib.sha256(data).hexdigest())},
    )
    path = tmp_path / "m.json"
    write_card(card, path)
    return card, path


def test_write_card_round_trips(tmp_path: Path) -> None:
    card, path = _card(tmp_path)
    assert load_card(path) == card
    assert not list(tmp_path.glob("*.tmp"))


def test_card_is_current_only_when_every_file_matches(tmp_path: Path) -> None:
    _, path = _card(tmp_path)
    assert card_is_current(path)
    (tmp_path / "m.onnx").write_bytes(b"changed")
    assert not card_is_current(path)
    (tmp_path / "m.onnx").unlink()
    assert not card_is_current(path)
    assert not card_is_current(tmp_path / "absent.json")
    (tmp_path / "broken.json").write_text("{")
    assert not card_is_current(tmp_path / "broken.json")


def test_model_card_rejects_unknown_postprocessor_and_fields() -> None:
    with pytest.raises(pydantic.ValidationError):
        ModelCard(name="x", postprocessor="ssd")
    with pytest.raises(pydantic.ValidationError):
        ModelCard.model_validate({"name": "x", "postprocessor": "yolo", "colour": "red"})


def test_model_card_defaults_suit_a_yolo_export() -> None:
    card = ModelCard(name="x", postprocessor="yolo")
    assert card.preprocessing.resize == "letterbox"
    assert card.input.color == "BGR" and card.input.layout == "NCHW"
