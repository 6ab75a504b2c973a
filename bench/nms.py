"""NMS: detectflow's (OpenCV's NMSBoxes) against the numpy loop it replaced, CPU per call on clustered boxes."""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

import numpy as np

from bench.report import replace_section
from detectflow.detectors.postprocess.nms import iou, nms

SECTION = "nms"
#: (candidates, clusters): a photo with one face above the threshold, a few faces, a crowd, an unfiltered head.
DEFAULT_CASES = ((5, 1), (20, 2), (100, 5), (1000, 30))
#: CPU seconds spent on each implementation and case, per round.
DEFAULT_SECONDS = 0.3


def numpy_nms(boxes: np.ndarray, scores: np.ndarray, iou_threshold: float) -> np.ndarray:
    """The hand-written greedy NMS detectflow used before (numpy, one IoU row per kept box)."""
    order = np.argsort(-scores, kind="stable")
    keep: list[int] = []
    while order.size:
        i = int(order[0])
        keep.append(i)
        rest = order[1:]
        order = rest[iou(boxes[i], boxes[rest]) <= iou_threshold]
    return np.asarray(keep, np.int64)


def clustered_boxes(n: int, clusters: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """``n`` candidate boxes (xyxy) jittered around ``clusters`` objects, as a detector's head gives them."""
    centres = rng.uniform(0, 600, (clusters, 2))
    xy = centres[rng.integers(0, clusters, n)] + rng.normal(0, 4, (n, 2))
    return np.concatenate([xy, xy + rng.uniform(40, 60, (n, 2))], axis=1), rng.uniform(0.5, 1.0, n)


def _cpu_us(fn, seconds: float) -> float:
    calls, start = 0, time.process_time()
    while time.process_time() - start < seconds:
        fn()
        calls += 1
    return (time.process_time() - start) / calls * 1e6


def measure(rounds: int, seconds: float) -> list[dict]:
    """Median CPU microseconds per call of each implementation on each case, and whether they agree."""
    rng = np.random.default_rng(0)
    rows = []
    for n, clusters in DEFAULT_CASES:
        boxes, scores = clustered_boxes(n, clusters, rng)
        ours, theirs = [], []
        for _ in range(rounds):
            ours.append(_cpu_us(lambda: nms(boxes, scores, 0.4), seconds))
            theirs.append(_cpu_us(lambda: numpy_nms(boxes, scores, 0.4), seconds))
        same = nms(boxes, scores, 0.4).tolist() == numpy_nms(boxes, scores, 0.4).tolist()
        rows.append({"n": n, "kept": len(nms(boxes, scores, 0.4)), "opencv": float(np.median(ours)),
                     "numpy": float(np.median(theirs)), "same": same})  # fmt: skip
    return rows


def render(rows: list[dict], rounds: int) -> str:
    lines = [
        "## Non-maximum suppression",
        "",
        f"Measured by `python -m bench.nms` (also run by `make bench`): CPU per call, median of {rounds} rounds, "
        f"one thread; clustered candidate boxes, IoU threshold 0.4; load average {os.getloadavg()[0]:.1f}. "
        "detectflow's `nms` hands the boxes to OpenCV's `cv2.dnn.NMSBoxes`; the numpy loop is the "
        "hand-written one it replaced. Both keep the same boxes in the same order (also checked on random "
        "sets by `tests/unit/detectors/test_nms.py`).",
        "",
        "| candidates | kept | OpenCV, µs | numpy loop, µs | speed-up | same boxes kept |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    for r in rows:
        lines.append(f"| {r['n']} | {r['kept']} | {r['opencv']:.1f} | {r['numpy']:.1f} | "
                     f"{r['numpy'] / r['opencv']:.1f}x | {'yes' if r['same'] else 'no'} |")  # fmt: skip
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--seconds", type=float, default=DEFAULT_SECONDS)
    ap.add_argument("--write", type=Path, help="replace this report's section of the given markdown file")
    args = ap.parse_args()
    report = render(measure(args.rounds, args.seconds), args.rounds)
    print(report)
    if args.write:
        replace_section(args.write, SECTION, report)


if __name__ == "__main__":
    main()
