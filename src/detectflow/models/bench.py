"""CPU latency of the built models, and int8 against fp32 throughput.

``python -m detectflow.models.bench [--threads 2] [--runs 30] [--only detect|embed]``: latency of the
detectors' ``detect()`` and the embedder's ``embed()``; ``python -m detectflow.models.bench --precision
[--seconds 3] [--rounds 5]``: raw session throughput of each detector's fp32 and int8 files at batch 1, in
1 session x N threads and N sessions x 1 thread (the embedder has no int8 file).
"""

from __future__ import annotations

import argparse
import os
import statistics
import threading
import time
from pathlib import Path

import numpy as np

from detectflow.config import Settings, Task
from detectflow.detectors import load_detector, load_embedder
from detectflow.detectors._common import prepare
from detectflow.detectors.registry import resolve_model
from detectflow.detectors.runtime import create_session

__all__ = ["compare_precisions", "measure_embed_latency", "measure_latency", "session_throughput"]

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


def session_throughput(sessions: list, feed: dict[str, np.ndarray], seconds: float) -> float:
    """Images per second of ``session.run`` on ``feed``, one Python thread per session, for ``seconds``."""
    counts = [0] * len(sessions)
    stop = time.perf_counter() + seconds

    def loop(i: int) -> None:
        while time.perf_counter() < stop:
            sessions[i].run(None, feed)
            counts[i] += 1

    start = time.perf_counter()
    threads = [threading.Thread(target=loop, args=(i,)) for i in range(len(sessions))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return sum(counts) / (time.perf_counter() - start)


def compare_precisions(settings: Settings, cores: int, seconds: float = 3.0, rounds: int = 5) -> list[dict]:
    """fp32 against int8 raw throughput of each built-in model at batch 1, side by side in one run.

    Every (model, precision, layout) is measured once per round, in turn, and the median over
    rounds is kept, so a change in machine load hits every configuration alike. Layouts: one
    session with ``cores`` intra-op threads, and ``cores`` sessions with one thread each.

    Parameters
    ----------
    settings
        Model directory and configured models.
    cores
        Threads to use in each layout.
    seconds
        Length of one measurement.
    rounds
        Measurements per configuration.

    Returns
    -------
    list[dict]
        One row per model, precision and layout: ``images_per_s`` (median), ``all`` (every round).
    """
    configs = []
    for task, (h, w) in ((Task.face, (480, 640)), (Task.object, (480, 640))):
        card, base = resolve_model(settings.model_for(task), settings.model_dir)
        image = np.random.default_rng(0).integers(0, 256, (h, w, 3), dtype=np.uint8)
        x, _ = prepare(image, card)
        feed = {card.input.name or "input": x}
        for variant in ("cpu", "cpu_int8"):
            if variant not in card.files:
                continue
            path = base / card.files[variant].path
            for streams, intra in ((1, cores), (cores, 1)):
                sessions = [create_session(path, ["CPUExecutionProvider"], intra) for _ in range(streams)]
                for sess in sessions:
                    sess.run(None, feed)
                configs.append({"model": card.name, "input": f"{x.shape[3]}x{x.shape[2]}",
                                "precision": card.files[variant].precision, "layout": f"{streams}x{intra}",
                                "sessions": sessions, "feed": feed, "all": []})
    for _ in range(rounds):
        for c in configs:
            c["all"].append(session_throughput(c["sessions"], c["feed"], seconds))
    rows = []
    for c in configs:
        rows.append({k: c[k] for k in ("model", "input", "precision", "layout")}
                    | {"images_per_s": statistics.median(c["all"]), "all": c["all"]})
    return rows


def _print_precisions(rows: list[dict], cores: int, seconds: float, rounds: int) -> None:
    best = {}
    for r in rows:
        key = (r["model"], r["precision"])
        best[key] = max(best.get(key, 0.0), r["images_per_s"])
    print(f"raw session.run at batch 1, {cores} cores, median of {rounds} x {seconds:g} s (load {os.getloadavg()[0]:.1f})")
    print(f"{'model':<22}{'input':<10}{'precision':<11}{'layout':<8}{'img/s':>8}{'ms/img':>8}{'vs fp32':>9}")
    for r in rows:
        ref = next((x["images_per_s"] for x in rows if x["model"] == r["model"] and x["layout"] == r["layout"]
                    and x["precision"] == "fp32"), r["images_per_s"])
        print(f"{r['model']:<22}{r['input']:<10}{r['precision']:<11}{r['layout']:<8}{r['images_per_s']:>8.1f}"
              f"{1000 / r['images_per_s']:>8.1f}{r['images_per_s'] / ref:>8.2f}x")
    for model in dict.fromkeys(r["model"] for r in rows):
        if (model, "int8") in best:
            print(f"{model}: best layout int8 / best layout fp32 = {best[(model, 'int8')] / best[(model, 'fp32')]:.2f}x")


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
    ap.add_argument("--precision", action="store_true", help="int8 against fp32 raw throughput instead of latency")
    ap.add_argument("--seconds", type=float, default=3.0, help="--precision: length of one measurement")
    ap.add_argument("--rounds", type=int, default=5, help="--precision: measurements per configuration")
    ap.add_argument("--only", choices=["detect", "embed"], default=None, help="Time only the detectors or the embedder.")
    args = ap.parse_args()
    settings = Settings(device="cpu", intra_op_threads=args.threads)
    if args.model_dir:
        settings = settings.model_copy(update={"model_dir": args.model_dir})
    if args.precision:
        if args.only == "embed":
            ap.error("--precision compares the detectors' fp32 and int8 files; the embedder has no int8 file")
        rows = compare_precisions(settings, args.threads, args.seconds, args.rounds)
        _print_precisions(rows, args.threads, args.seconds, args.rounds)
        return
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
