"""Which stem convolutions of the face model can be quantized: their effect on the calibration images alone."""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path

import numpy as np

from detectflow.config import Settings
from detectflow.models import photos, quantize, sources
from detectflow.models.cards import load_card

__all__ = ["DEFAULT_BOX_FLOOR", "DEFAULT_RULE_FACTOR", "DEFAULT_SCORE_FLOOR", "output_difference", "stem_sensitivity"]

#: Anchors whose face probability (fp32 or int8) reaches this are compared for the score figure.
DEFAULT_SCORE_FLOOR = 0.3
#: Anchors whose fp32 face probability reaches this are compared for the box-offset figure.
DEFAULT_BOX_FLOOR = 0.5
#: A stem convolution is quantized when, quantized alone, both figures stay within this factor of the all-float stem's.
DEFAULT_RULE_FACTOR = 1.1


def output_difference(reference: list[tuple[np.ndarray, np.ndarray]], candidate: list[tuple[np.ndarray, np.ndarray]],
                      score_floor: float = DEFAULT_SCORE_FLOOR, box_floor: float = DEFAULT_BOX_FLOOR) -> dict[str, float]:
    """The largest face-probability and box-offset differences between two models' outputs on the same feeds.

    Parameters
    ----------
    reference, candidate
        Per feed, RetinaFace's ``(loc [1, A, 4], conf [1, A, 2])`` outputs (fp32, then int8).
    score_floor
        Probability difference taken over the anchors where either face probability reaches it.
    box_floor
        Box-offset difference taken over the anchors where the reference's face probability reaches it.

    Returns
    -------
    dict[str, float]
        ``probability`` and ``box_offset``: maxima over every feed (0.0 where no anchor qualifies).
    """
    prob = box = 0.0
    for (loc, conf), (loc8, conf8) in zip(reference, candidate, strict=True):
        p, p8 = conf[0, :, 1], conf8[0, :, 1]
        near = np.maximum(p, p8) >= score_floor
        if near.any():
            prob = max(prob, float(np.abs(p - p8)[near].max()))
        faces = p >= box_floor
        if faces.any():
            box = max(box, float(np.abs(loc[0][faces] - loc8[0][faces]).max()))
    return {"probability": round(prob, 4), "box_offset": round(box, 4)}


def stem_sensitivity(model_dir: Path, download_dir: Path = sources.DEFAULT_DOWNLOAD_DIR, stem: int | None = None,
                     calibration_size: tuple[int, int] | None = None, factor: float = DEFAULT_RULE_FACTOR) -> dict:
    """Quantize the face model with its first ``stem`` convolutions float, then with each one alone quantized.

    Calibrated as the build does; ``stem`` and ``calibration_size`` default to the face model's
    recipe (``build.INT8_RECIPES``). The figures of :func:`output_difference` are taken on the
    calibration images, each at its own size through the model's preprocessing. The accuracy
    report's images are not used.

    Returns
    -------
    dict
        ``all_float``, ``all_quantized`` and ``each`` (per convolution: its name, figures and whether
        the rule keeps it quantized), and ``quantize`` (the names the rule quantizes).
    """
    import onnx
    import onnxruntime as ort

    from detectflow.models.build import INT8_RECIPES

    recipe = INT8_RECIPES["face"]
    stem = recipe["float_stem_convs"] if stem is None else stem
    calibration_size = calibration_size or tuple(recipe["calibration_size"])
    card = load_card(Path(model_dir) / f"{Settings.model_fields['face_model'].default}.json")
    fp32 = Path(model_dir) / card.files["cpu"].path
    calibration = photos.calibration_images(photos.load_photos(download_dir))
    native = list(quantize.model_feeds(card, calibration))
    feeds = list(quantize.model_feeds(card, quantize.at_one_size(calibration, calibration_size)))

    def outputs(path: Path) -> list[tuple[np.ndarray, np.ndarray]]:
        session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
        return [tuple(session.run(["loc", "conf"], f)) for f in native]

    reference = outputs(fp32)
    model = onnx.load(str(fp32))
    stem_all = quantize.stem_nodes(model, stem)
    convs = [n.name for n in model.graph.node if n.op_type == "Conv"][:stem]
    with tempfile.TemporaryDirectory(prefix="detectflow-sensitivity-") as tmp:
        dest = Path(tmp) / "int8.onnx"

        def figures(float_stem: int, keep: list[str]) -> dict[str, float]:
            quantize.quantize_int8(fp32, dest, iter(feeds), float_stem, keep)
            return output_difference(reference, outputs(dest))

        all_float = figures(stem, [])
        each = []
        for i, conv in enumerate(convs):
            alone = set(quantize.stem_nodes(model, i + 1)) - set(quantize.stem_nodes(model, i))
            f = figures(0, [n for n in stem_all if n not in alone])
            ok = all(f[k] <= factor * all_float[k] for k in f)
            each.append({"conv": conv, **f, "quantize": ok})
        all_quantized = figures(0, [])
    return {"all_float": all_float, "all_quantized": all_quantized, "each": each, "factor": factor,
            "quantize": [e["conv"] for e in each if e["quantize"]]}


def main(argv: list[str] | None = None) -> None:
    """``python -m detectflow.models.sensitivity``: print the face stem's figures as JSON."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--model-dir", type=Path, default=None, help="built models (default: the settings' model_dir)")
    args = parser.parse_args(argv)
    model_dir = (args.model_dir or Settings().model_dir).expanduser()
    print(json.dumps(stem_sensitivity(model_dir), indent=1))


if __name__ == "__main__":  # pragma: no cover
    main()
