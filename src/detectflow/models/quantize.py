"""int8 CPU variant: static QDQ quantization calibrated on the fixed photo set, and its accuracy report."""

from __future__ import annotations

import logging
import tempfile
import time
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path

import numpy as np

from detectflow.config import Settings
from detectflow.detectors._common import model_info, prepare
from detectflow.detectors.base import Detector
from detectflow.detectors.postprocess.letterbox import letterbox
from detectflow.models import photos, sources
from detectflow.models.accuracy import AccuracyBounds, compare_detections, decide, summarize
from detectflow.models.cards import ModelCard, ModelFile

__all__ = [
    "FACE_CALIBRATION_SIZE", "FACE_FLOAT_STEM_CHOICE", "INT8_OPSET", "QUANTIZATION", "accuracy_report", "add_int8",
    "at_one_size", "head_nodes", "model_feeds", "quantize_int8", "stem_nodes", "unquantizable_nodes", "with_noise",
]

log = logging.getLogger(__name__)

#: Lowest opset of the quantized graph: per-channel DequantizeLinear (its ``axis``) needs 13.
INT8_OPSET = 13
#: (height, width) pixels every face calibration photo is letterboxed to before the model's own
#: preprocessing. One size for all: at their own sizes (up to the 1024 px mosaics) MinMax ranges
#: came out wider, and the calibration images' own outputs further from fp32 (see docs/models.md).
FACE_CALIBRATION_SIZE = (480, 640)

#: How the int8 files are made (recorded in the card). Activations uint8 with a zero point: they are
#: mostly ReLU / LeakyReLU outputs, and u8 x s8 is the fast integer kernel on x86 (int8 activations
#: ran 1.8x slower here). Weights int8, symmetric, one scale per output channel: with one scale per
#: tensor, 9 of 14 face images had a box at IoU 0.82-0.90 against fp32. MinMax calibration: on the face
#: photos letterboxed to one size (FACE_CALIBRATION_SIZE) percentile was tried too; its box offsets on
#: the calibration images were 4x further from fp32.
QUANTIZATION = {
    "tool": "onnxruntime.quantization.quantize_static",
    "format": "QDQ",
    "activations": "uint8 (asymmetric, per tensor)",
    "weights": "int8 (symmetric, per channel)",
    "calibration": "MinMax",
    "opset": INT8_OPSET,
}

#: How the face model's float stem was chosen (recorded in its card): computed on the calibration
#: images only, never on the accuracy report's.
FACE_FLOAT_STEM_CHOICE = (
    "11, rechecked on the 13 calibration images only (python -m detectflow.models.sensitivity, each "
    "image at its own size): with the 11 float, int8 differs from fp32 by at most 0.175 in face probability "
    "(anchors where either is >= 0.3) and 0.105 in box offset (anchors where fp32 >= 0.5); a convolution "
    "is quantized when, quantized alone, it keeps both within 1.1x of that: none does (the 7th: 0.134 and "
    "0.159; the 10th: 0.253 and 0.116; all 11 quantized: 0.539 and 0.502), so all 11 stay float"
)


def _default_thresholds() -> dict[str, float]:
    fields = Settings.model_fields
    return {"face": fields["face_score_threshold"].default, "object": fields["object_score_threshold"].default}


def quantize_int8(fp32: Path, dest: Path, inputs: Iterable[dict[str, np.ndarray]], float_stem: int = 0,
                  keep_float: Iterable[str] = ()) -> list[str]:
    """Write the static QDQ int8 version of ``fp32`` to ``dest``, calibrated on ``inputs``.

    The detection heads (:func:`head_nodes`), nodes without a finite range
    (:func:`unquantizable_nodes`) and the first ``float_stem`` convolutions (:func:`stem_nodes`) stay float.

    Parameters
    ----------
    fp32
        The fp32 ONNX file (its opset is raised to INT8_OPSET first when lower).
    dest
        Output file.
    inputs
        Calibration feeds (input name -> preprocessed tensor), consumed once in order.
    float_stem
        Leading convolutions (and their activations) kept float.
    keep_float
        Names of further nodes kept float.

    Returns
    -------
    list[str]
        Names of the nodes kept in float.
    """
    import onnx
    from onnx import version_converter
    from onnxruntime.quantization import CalibrationDataReader, CalibrationMethod, QuantFormat, QuantType, quantize_static

    class _Feeds(CalibrationDataReader):
        def __init__(self) -> None:
            self._it = iter(inputs)

        def get_next(self):
            return next(self._it, None)

    model = onnx.load(str(fp32))
    excluded = list(dict.fromkeys(head_nodes(model) + unquantizable_nodes(model) + stem_nodes(model, float_stem)
                                  + list(keep_float)))
    opset = next(o.version for o in model.opset_import if o.domain in ("", "ai.onnx"))
    if opset < INT8_OPSET:
        model = version_converter.convert_version(model, INT8_OPSET)
    with tempfile.TemporaryDirectory(prefix="detectflow-int8-") as tmp:
        src = Path(tmp) / "fp32.onnx"
        onnx.save(model, str(src))
        root = logging.getLogger()
        saved, root.level = root.level, max(root.level, logging.ERROR)  # it logs advice on the root logger
        try:
            with np.errstate(invalid="ignore", divide="ignore"):  # the -inf pad's range, left out anyway
                quantize_static(
                    str(src), str(dest), _Feeds(),
                    quant_format=QuantFormat.QDQ,
                    per_channel=True,
                    activation_type=QuantType.QUInt8,
                    weight_type=QuantType.QInt8,
                    calibrate_method=CalibrationMethod.MinMax,
                    nodes_to_exclude=excluded,
                )
        finally:
            root.setLevel(saved)
    return excluded


_ACTIVATIONS = ("Relu", "LeakyRelu", "Clip", "Sigmoid", "HardSigmoid", "HardSwish")


def stem_nodes(model, convs: int) -> list[str]:
    """The first ``convs`` Conv nodes in graph order and the activations reading them.

    The stem runs at full resolution on the raw image, where quantization error is largest
    relative to the signal and feeds every later layer.
    """
    stem = [n for n in model.graph.node if n.op_type == "Conv"][:convs]
    outputs = {o for n in stem for o in n.output}
    acts = [n for n in model.graph.node if n.op_type in _ACTIVATIONS and n.input and n.input[0] in outputs]
    return [n.name for n in stem + acts]


def unquantizable_nodes(model) -> list[str]:
    """Nodes whose tensors have no finite range: a Pad with a non-finite constant and the nodes reading it.

    tf2onnx writes TF's SAME max pooling as ``Pad(value=-inf) -> MaxPool``; a -inf range gives an
    infinite scale, which turns the whole graph into NaN. Those nodes stay float.
    """
    from onnx import numpy_helper

    consts = {t.name: numpy_helper.to_array(t) for t in model.graph.initializer}
    for n in model.graph.node:
        if n.op_type == "Constant":
            for a in n.attribute:
                if a.name == "value":
                    consts[n.output[0]] = numpy_helper.to_array(a.t)
    bad_tensors, names = set(), []
    for n in model.graph.node:
        if n.op_type == "Pad" and len(n.input) > 2 and n.input[2] in consts:
            if not np.all(np.isfinite(consts[n.input[2]])):
                names.append(n.name)
                bad_tensors.update(n.output)
    names += [n.name for n in model.graph.node if bad_tensors.intersection(n.input)]
    return names


def _detector(card: ModelCard, path: Path, variant: str, threshold: float) -> Detector:
    from detectflow.detectors.onnx_face import OnnxFaceDetector
    from detectflow.detectors.onnx_object import OnnxObjectDetector
    from detectflow.detectors.runtime import create_session

    session = create_session(path, ["CPUExecutionProvider"], 1)
    info = model_info(card, card.files[variant].sha256 or "", "CPUExecutionProvider", variant)
    cls = OnnxFaceDetector if card.postprocessor == "retinaface" else OnnxObjectDetector
    return cls(session, card, info, threshold, task=card.task or "face")


def accuracy_report(reference: Detector, candidate: Detector, images: dict[str, np.ndarray],
                    bounds: AccuracyBounds = AccuracyBounds(),
                    candidate_images: dict[str, np.ndarray] | None = None) -> dict:
    """fp32 against int8 on ``images``: per-image comparisons, totals for the golden photos and all, verdict.

    Parameters
    ----------
    reference, candidate
        The fp32 and int8 detectors, at the same (default) threshold.
    images
        Name -> BGR image.
    bounds
        What must hold on every image.
    candidate_images
        What the candidate sees instead of ``images`` (same names), e.g. noisy copies; None: the same.
    """
    seen = candidate_images or images
    comparisons = [compare_detections(n, reference.detect(img), candidate.detect(seen[n]), bounds.min_iou)
                   for n, img in images.items()]
    passed, reasons = decide(comparisons, bounds)
    golden = [c for c in comparisons if c.image in photos.GOLDEN_PHOTOS]
    return {
        "passed": passed,
        "reasons": reasons,
        "bounds": {"min_iou": bounds.min_iou, "max_score_diff": bounds.max_score_diff},
        "golden": summarize(golden),
        "all": summarize(comparisons),
        "images": [c.to_dict() for c in comparisons],
    }


def with_noise(images: dict[str, np.ndarray], seed: int = 0) -> dict[str, np.ndarray]:
    """Copies of ``images`` with uniform integer noise in [-1, 1] grey levels (deterministic)."""
    rng = np.random.default_rng(seed)
    return {n: np.clip(img.astype(np.int16) + rng.integers(-1, 2, img.shape, dtype=np.int16), 0, 255).astype(np.uint8)
            for n, img in images.items()}


def at_one_size(images: dict[str, np.ndarray], size: tuple[int, int]) -> dict[str, np.ndarray]:
    """``images`` letterboxed to ``size`` = (height, width): aspect kept, centred, black borders.

    The histogram calibrators of onnxruntime (percentile, entropy) need tensors of one shape; MinMax
    does not, but its ranges are then those of pictures at one scale rather than of the largest one.
    """
    return {n: letterbox(img, size, 0)[0] for n, img in images.items()}


def model_feeds(card: ModelCard, images: dict[str, np.ndarray]) -> Iterator[dict[str, np.ndarray]]:
    """Each image through the card's own preprocessing, as a session feed (input name -> tensor), lazily."""
    session_input = card.input.name or "input"
    for img in images.values():
        yield {session_input: prepare(img, card)[0]}


def add_int8(card: ModelCard, model_dir: Path, download_dir: Path = sources.DEFAULT_DOWNLOAD_DIR,
             say: Callable[[str], None] = log.info, float_stem: int = 0,
             calibration_size: tuple[int, int] | None = None, float_stem_choice: str | None = None) -> ModelCard:
    """Quantize the card's fp32 CPU file, measure it against fp32, and return the card with it.

    Writes ``<name>.int8.onnx`` beside the fp32 file. The card gains ``files["cpu_int8"]``,
    ``verification["int8"]`` (settings, calibration set, accuracy report) and ``cpu_precision``:
    ``int8`` when the report passed, else ``fp32`` (and the reasons are in the report).
    ``calibration_size`` (height, width): calibrate on the photos letterboxed to it
    (:func:`at_one_size`), None: at their own sizes. ``float_stem_choice``: how ``float_stem`` was
    chosen, recorded in the card.

    Raises
    ------
    detectflow.models.sources.SourceError
        When a photo package cannot be fetched or does not match its pin.
    """
    start = time.perf_counter()
    model_dir = Path(model_dir)
    fp32_path = model_dir / card.files["cpu"].path
    dest = model_dir / f"{card.name}.int8.onnx"
    tmp = dest.with_suffix(".onnx.tmp")
    threshold = _default_thresholds()[card.task or "face"]
    photo_set = photos.load_photos(download_dir)
    calibration = photos.calibration_images(photo_set)
    if calibration_size is not None:
        calibration = at_one_size(calibration, calibration_size)
    evaluation = photos.evaluation_images(photo_set)
    say(f"{card.name}: int8 calibration on {len(calibration)} images")

    excluded = quantize_int8(fp32_path, tmp, model_feeds(card, calibration), float_stem)
    sha = sources.sha256_file(tmp)
    files = {**card.files, "cpu_int8": ModelFile(path=dest.name, sha256=sha, precision="int8")}
    measured = card.model_copy(update={"files": files})
    reference = _detector(measured, fp32_path, "cpu", threshold)
    candidate = _detector(measured, tmp, "cpu_int8", threshold)
    report = accuracy_report(reference, candidate, evaluation)
    baseline = accuracy_report(reference, reference, evaluation, candidate_images=with_noise(evaluation))
    tmp.replace(dest)
    seconds = time.perf_counter() - start
    verdict = "passed: int8 is the CPU default" if report["passed"] else "failed: CPU stays fp32"
    say(f"{card.name}: int8 accuracy report {verdict} ({report['all']['images']} images, {seconds:.1f} s)")
    for reason in report["reasons"]:
        say(f"{card.name}:   {reason}")
    verification = {
        **card.verification,
        "int8": {
            "quantization": {
                **QUANTIZATION, "float_stem_convs": float_stem, "nodes_kept_float": len(excluded),
                **({"calibration_size": list(calibration_size),
                    "calibration_input": f"each photo letterboxed to {calibration_size[1]}x{calibration_size[0]} "
                                         "(aspect kept, black borders), then the model's preprocessing"}
                   if calibration_size is not None else {}),
                **({"float_stem_choice": float_stem_choice} if float_stem_choice else {}),
            },
            "calibration_images": list(calibration),
            "photo_sources": [s.spec for s in (sources.SKIMAGE_WHEEL, sources.MATPLOTLIB_WHEEL,
                                               sources.FACE_RECOGNITION_SDIST)],
            "score_threshold": threshold,
            "report": report,
            "fp32_noise": {"what": "fp32 against fp32 on the same images plus +-1 grey level of uniform noise",
                           "passed": baseline["passed"], "reasons": baseline["reasons"],
                           "golden": baseline["golden"], "all": baseline["all"]},
            "seconds": round(seconds, 1),
        },
    }
    return measured.model_copy(update={
        "verification": verification, "cpu_precision": "int8" if report["passed"] else "fp32",
    })


def head_nodes(model) -> list[str]:
    """The last Conv before each graph output and every node after it: the detection heads.

    They are 1x1 or 3x3 convolutions on small maps (a few percent of the compute) whose outputs
    are the scores and box offsets themselves; kept float, scores are not rounded to 1/255.
    """
    producer = {o: n for n in model.graph.node for o in n.output}
    names: list[str] = []
    for out in model.graph.output:
        stack = [out.name]
        while stack:
            n = producer.get(stack.pop())
            if n is None or n.name in names:
                continue
            names.append(n.name)
            if n.op_type != "Conv":
                stack.extend(i for i in n.input if i in producer)
    return names
