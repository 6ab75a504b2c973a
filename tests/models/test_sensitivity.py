"""The face stem's sensitivity on the calibration images: the rule behind the card's float stem."""

from __future__ import annotations

from pathlib import Path

from detectflow.models.build import INT8_RECIPES
from detectflow.models.cards import load_card
from detectflow.models.sensitivity import stem_sensitivity


def test_stem_sensitivity_keeps_every_face_stem_convolution_float(model_dir: Path) -> None:
    # Given the built face model; when each stem convolution is quantized alone, on the calibration images
    s = stem_sensitivity(model_dir, stem=INT8_RECIPES["face"]["float_stem_convs"])
    # Then the rule quantizes none of them, as the build keeps them, and the figures are those the card records
    assert len(s["each"]) == 11 and s["quantize"] == []
    assert all(e["probability"] > s["factor"] * s["all_float"]["probability"]
               or e["box_offset"] > s["factor"] * s["all_float"]["box_offset"] for e in s["each"])
    assert s["all_quantized"]["probability"] > s["all_float"]["probability"]
    choice = load_card(model_dir / "retinaface-mnet025.json").verification["int8"]["quantization"]["float_stem_choice"]
    assert f"{s['all_float']['probability']:.3f}" in choice and f"{s['all_float']['box_offset']:.3f}" in choice
