"""The batching gain: each model's images/s at batch 1, 2, 4, 8 on every core, and the latency batching adds.

Run: ``python -m bench.batching [--write docs/performance.md]`` (``make bench`` runs it). Every figure of a
model comes from one run, the batch sizes interleaved round by round, so a drift of the machine's load
favours none of them.
"""

from __future__ import annotations

import argparse
import gc
import os
import time
from collections.abc import Callable
from pathlib import Path

import cv2
import numpy as np

from bench.report import replace_section
from bench.run import _run_streams, pct, photo_640x480
from detectflow.config import Settings, Task
from detectflow.detectors import load_detector, load_embedder
from detectflow.detectors.batching import DEFAULT_MAX_BATCH_DELAY_MS, MicroBatcher
from detectflow.jobs.images import decode_image
from detectflow.worker.layout import available_cores

#: Batch sizes measured.
DEFAULT_BATCHES = (1, 2, 4, 8)
#: Seconds of each throughput measurement.
DEFAULT_SECONDS = 3.0
#: Sequential jobs timed for the low-load latency, per configuration.
DEFAULT_LATENCY_SAMPLES = 200
SECTION = "batching"


def _models(cores: int, precision: str) -> dict[str, tuple[list, np.ndarray]]:
    """Per model: one single-threaded model per core (the default CPU layout) and one preprocessed input."""
    s = Settings(device="cpu", intra_op_threads=1, worker_max_batch=1, cpu_precision=precision)
    photo = decode_image(photo_640x480())
    out: dict[str, tuple[list, np.ndarray]] = {}
    for task in (Task.face, Task.object):
        dets = [load_detector(task, s) for _ in range(cores)]
        out[f"{dets[0].info.name} ({dets[0].info.precision})"] = (dets, dets[0].prepare(photo)[0])
    embs = [load_embedder(s) for _ in range(cores)]
    chip = cv2.resize(photo[:300, 150:450], (150, 150))
    x = np.ascontiguousarray((chip[:, :, ::-1].astype(np.float32) / 255).transpose(2, 0, 1)[None])
    out[f"{embs[0].info.name} ({embs[0].info.precision})"] = (embs, x)
    return out


def _infer_of(model) -> Callable[[np.ndarray], object]:
    if hasattr(model, "infer"):
        return model.infer
    name, output = model._input, model._output
    return lambda x: model.session.run([output], {name: x})


def throughput(models: list, x: np.ndarray, batch: int, seconds: float) -> float:
    """Inputs/s with every core's session running batches of ``batch`` copies of ``x``."""
    xb = np.ascontiguousarray(np.repeat(x, batch, axis=0))
    steps = [lambda f=_infer_of(m): f(xb) for m in models]
    calls_per_s, _ = _run_streams(steps, seconds)
    return calls_per_s * batch


def low_load_latency(detector, image: np.ndarray, max_batch: int, samples: int) -> dict[int, float]:
    """p50 ms of one detect() at a time (nothing to batch with), direct and through a batcher of ``max_batch``.

    The two alternate sample by sample, so a change of the machine's load during the run hits both alike.
    Returns {1: direct p50, max_batch: batcher p50}.
    """
    batcher = MicroBatcher(detector.infer, max_batch, DEFAULT_MAX_BATCH_DELAY_MS)
    runs = {1: detector.infer, max_batch: batcher}
    times: dict[int, list[float]] = {1: [], max_batch: []}
    try:
        for b, run in runs.items():
            detector.run_one = run
            for _ in range(10):
                detector.detect(image)
        for i in range(2 * samples):
            b = 1 if i % 2 == 0 else max_batch
            detector.run_one = runs[b]
            t0 = time.perf_counter()
            detector.detect(image)
            times[b].append((time.perf_counter() - t0) * 1000)
            time.sleep(0.002)  # jobs arrive apart: each is alone in its batch
    finally:
        detector.run_one = detector.infer
        batcher.close()
    return {b: pct(t, 50) for b, t in times.items()}


def measure(batches: tuple[int, ...], seconds: float, samples: int, rounds: int, precision: str) -> dict:
    cores = available_cores()
    res: dict = {"cores": cores, "precision": precision, "rate": {}, "latency": {}, "load": []}
    models = _models(cores, precision)
    photo = decode_image(photo_640x480())
    for r in range(rounds):
        res["load"].append(os.getloadavg()[0])
        order = batches if r % 2 == 0 else batches[::-1]
        for name, (ms, x) in models.items():
            for b in order:
                res["rate"].setdefault(name, {}).setdefault(b, []).append(throughput(ms, x, b, seconds))
        print(f"round {r + 1}: " + "; ".join(
            f"{n} " + " ".join(f"b{b} {v[-1]:.0f}" for b, v in sorted(d.items())) for n, d in res["rate"].items()
        ), flush=True)
    for name, (ms, _) in models.items():
        if hasattr(ms[0], "detect"):
            res["latency"][name] = low_load_latency(ms[0], photo, max(batches), samples)
    del models
    gc.collect()
    return res


def render(res: dict, batches: tuple[int, ...]) -> str:
    lines = [
        "## Dynamic batching",
        "",
        f"Inputs/s of each model alone with one single-threaded session per core ({res['cores']} cores, the default "
        f"CPU layout), at each batch size, median of the rounds (each model's sizes interleaved in one run); the "
        f"ratio is to batch 1. Load average during the run: {min(res['load']):.1f}-{max(res['load']):.1f}.",
        "",
        "| model | " + " | ".join(f"batch {b}" for b in batches) + " |",
        "| --- | " + " | ".join("---" for _ in batches) + " |",
    ]
    for name, by_b in res["rate"].items():
        base = float(np.median(by_b[1]))
        cells = [f"{float(np.median(by_b[b])):.1f} ({float(np.median(by_b[b])) / base:.2f}x)" for b in batches]
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    lines += [
        "",
        f"Latency at low load (one job at a time, p50 of one `detect()` on the 640x480 photo, decode excluded), "
        f"direct and through a batcher of {max(batches)} with its default delay of {DEFAULT_MAX_BATCH_DELAY_MS:g} ms, "
        "the two alternating call by call:",
        "",
        "| model | direct ms | batcher ms | added ms |",
        "| --- | --- | --- | --- |",
    ]
    for name, lat in res["latency"].items():
        b = max(batches)
        lines.append(f"| {name} | {lat[1]:.2f} | {lat[b]:.2f} | {lat[b] - lat[1]:.2f} |")
    lines += [
        "",
        "`worker_max_batch=0` (the default) batches on a GPU and not on CPU; `DETECTFLOW_WORKER_MAX_BATCH=4` "
        "turns it on anywhere. Printed by `python -m bench.batching` (part of `make bench`).",
    ]
    return "\n".join(lines) + "\n"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", type=float, default=DEFAULT_SECONDS)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--samples", type=int, default=DEFAULT_LATENCY_SAMPLES)
    ap.add_argument("--precision", default="auto", choices=["fp32", "int8", "auto"],
                    help="CPU model files (auto: what `make up` runs)")
    ap.add_argument("--write", type=Path, help="replace this report's section of the given markdown file")
    args = ap.parse_args()
    res = measure(DEFAULT_BATCHES, args.seconds, args.samples, args.rounds, args.precision)
    report = render(res, DEFAULT_BATCHES)
    print(report)
    if args.write:
        replace_section(args.write, SECTION, report)


if __name__ == "__main__":
    main()
