"""CPU latency of the built models: ``python -m detectflow.models.bench [--threads 2] [--runs 30] [--only embed]``."""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

import numpy as np

from detectflow.config import Settings, Task
from detectflow.detectors import load_detector, load_embedder

__all__ = ["measure_latency", "measure_embed_latency"]

#: Batch sizes the embedder is timed at (faces per session run).
DEFAULT_EMBED_BATCHES = (1, 4, 8)


def measure_latency(task: Task, settings: Settings, image: np.ndarray, runs: int = 30) -> dict[str, float]:
    """Median and 90th-percentile milliseconds of ``detect`` (pre- and postprocessing included).

    Parameters
    ----------
    task
        Which configured model to time.
    settings
        Model directory, device and threads.
    image
        BGR uint8 input.
    runs
        Timed runs after one warm-up.
    """
    detector = load_detector(task, settings)
    detector.warmup()
    detector.detect(image)
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        detector.detect(image)
        times.append((time.perf_counter() - start) * 1000)
    times.sort()
    return {"median_ms": statistics.median(times), "p90_ms": times[int(0.9 * (len(times) - 1))],
            "provider": detector.info.provider}


def measure_embed_latency(settings: Settings, batch: int, runs: int = 30) -> dict[str, float]:
    """Median, 90th-percentile and fastest milliseconds per face of ``embed`` on a batch of aligned chips.

    The fastest run is what the model costs when nothing else competes for the cores (on a shared
    machine the median is mostly other people's load).

    Parameters
    ----------
    settings
        Model directory, ``embed_model``, device and threads.
    batch
        Chips per call (one session run).
    runs
        Timed calls after one warm-up.
    """
    embedder = load_embedder(settings)
    embedder.warmup()
    h, w = embedder.card.input.size
    chips = np.random.default_rng(0).integers(0, 256, (batch, h, w, 3), dtype=np.uint8)
    embedder.embed(chips)
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        embedder.embed(chips)
        times.append((time.perf_counter() - start) * 1000 / batch)
    times.sort()
    return {"median_ms": statistics.median(times), "p90_ms": times[int(0.9 * (len(times) - 1))],
            "best_ms": times[0], "provider": embedder.info.provider}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--model-dir", type=Path, default=None)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--runs", type=int, default=30)
    ap.add_argument("--only", choices=["detect", "embed"], default=None, help="Time only the detectors or the embedder.")
    args = ap.parse_args()
    settings = Settings(device="cpu", intra_op_threads=args.threads)
    if args.model_dir:
        settings = settings.model_copy(update={"model_dir": args.model_dir})
    if args.only != "embed":
        _bench_detectors(settings, args)
    if args.only != "detect":
        print(f"{'model':<22}{'faces per run':<30}{'ms/face':>10}{'p90':>9}{'best':>9}  provider (threads={args.threads})")
        for batch in DEFAULT_EMBED_BATCHES:
            r = measure_embed_latency(settings, batch, args.runs)
            print(f"{settings.embed_model:<22}{f'batch {batch} (150x150 chips)':<30}{r['median_ms']:>10.1f}"
                  f"{r['p90_ms']:>9.1f}{r['best_ms']:>9.1f}  {r['provider']}")


def _bench_detectors(settings: Settings, args: argparse.Namespace) -> None:
    rng = np.random.default_rng(0)
    cases = [
        (Task.face, "640x480", (480, 640)),
        (Task.face, "1024x768", (768, 1024)),
        (Task.face, "1920x1080 (shrunk to 1024)", (1080, 1920)),
        (Task.object, "640x480 (resized to 416)", (480, 640)),
    ]
    print(f"{'model':<22}{'input':<30}{'median ms':>10}{'p90 ms':>9}  provider (threads={args.threads})")
    for task, label, (h, w) in cases:
        img = rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
        r = measure_latency(task, settings, img, args.runs)
        print(f"{settings.model_for(task):<22}{label:<30}{r['median_ms']:>10.1f}{r['p90_ms']:>9.1f}  {r['provider']}")


if __name__ == "__main__":
    main()
