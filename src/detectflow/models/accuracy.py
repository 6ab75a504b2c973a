"""Accuracy of a quantized model against fp32: pair two detection lists, then decide pass or fail."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

from detectflow.detectors.base import Detection

__all__ = [
    "DEFAULT_MAX_SCORE_DIFF",
    "DEFAULT_MIN_IOU",
    "AccuracyBounds",
    "ImageComparison",
    "compare_detections",
    "decide",
    "iou",
    "summarize",
]

#: Smallest IoU between an fp32 detection and its int8 counterpart for them to count as the same.
DEFAULT_MIN_IOU = 0.9
#: Largest |score difference| (probability) between paired fp32 and int8 detections. fp32 against
#: itself, with +-1 grey level of noise added to the image, moves weak detections by up to 0.07 on
#: the report's photos (recorded in each card as ``fp32_noise``): a tighter bound would fail fp32.
DEFAULT_MAX_SCORE_DIFF = 0.1


@dataclass(frozen=True, slots=True)
class AccuracyBounds:
    """What int8 must keep, on every image, to become the CPU default."""

    min_iou: float = DEFAULT_MIN_IOU
    max_score_diff: float = DEFAULT_MAX_SCORE_DIFF


@dataclass(frozen=True, slots=True)
class ImageComparison:
    """fp32 against int8 on one image, both at the task's default threshold."""

    image: str
    reference: int  # fp32 detections
    candidate: int  # int8 detections
    paired: int  # same label, IoU >= min_iou (one-to-one)
    lost: list[str] = field(default_factory=list)  # labels of fp32 detections without an int8 counterpart
    gained: list[str] = field(default_factory=list)  # labels of int8 detections without an fp32 counterpart
    min_iou: float | None = None  # over the pairs
    max_score_diff: float | None = None  # over the pairs
    same_labels: bool = True  # the set of labels found is the same

    def to_dict(self) -> dict:
        """JSON-ready form (figures rounded to 4 decimals)."""
        d = asdict(self)
        for k in ("min_iou", "max_score_diff"):
            if d[k] is not None:
                d[k] = round(d[k], 4)
        return d


def iou(a: Detection, b: Detection) -> float:
    """IoU of the boxes of two detections."""
    ax2, ay2 = a.box.x + a.box.width, a.box.y + a.box.height
    bx2, by2 = b.box.x + b.box.width, b.box.y + b.box.height
    iw = max(0.0, min(ax2, bx2) - max(a.box.x, b.box.x))
    ih = max(0.0, min(ay2, by2) - max(a.box.y, b.box.y))
    inter = iw * ih
    union = a.box.width * a.box.height + b.box.width * b.box.height - inter
    return inter / union if union > 0 else 0.0


def compare_detections(
    image: str, reference: list[Detection], candidate: list[Detection], min_iou: float = DEFAULT_MIN_IOU
) -> ImageComparison:
    """Pair ``reference`` (fp32) and ``candidate`` (int8) detections one-to-one, best IoU first.

    Only detections of the same label pair, and only at IoU >= ``min_iou``; what is left over on
    either side is lost or gained. Both lists must already be cut at the same score threshold.

    Parameters
    ----------
    image
        Name recorded in the result.
    reference, candidate
        Detections of the fp32 and the quantized model.
    min_iou
        Smallest IoU of a pair.
    """
    pairs = sorted(
        ((iou(r, c), i, j) for i, r in enumerate(reference) for j, c in enumerate(candidate) if r.label == c.label),
        key=lambda t: (-t[0], t[1], t[2]),
    )
    used_r, used_c, matched = set(), set(), []
    for v, i, j in pairs:
        if v < min_iou:
            break
        if i in used_r or j in used_c:
            continue
        used_r.add(i)
        used_c.add(j)
        matched.append((v, abs(reference[i].score - candidate[j].score)))
    return ImageComparison(
        image=image,
        reference=len(reference),
        candidate=len(candidate),
        paired=len(matched),
        lost=[d.label for i, d in enumerate(reference) if i not in used_r],
        gained=[d.label for j, d in enumerate(candidate) if j not in used_c],
        min_iou=min((v for v, _ in matched), default=None),
        max_score_diff=max((s for _, s in matched), default=None),
        same_labels={d.label for d in reference} == {d.label for d in candidate},
    )


def decide(comparisons: list[ImageComparison], bounds: AccuracyBounds = AccuracyBounds()) -> tuple[bool, list[str]]:
    """Whether int8 keeps fp32's detections on every image, and why not.

    It passes when, on every image, every detection pairs (nothing lost, nothing gained, so the
    labels are the same too) and every pair's score differs by at most ``bounds.max_score_diff``.

    Returns
    -------
    tuple[bool, list[str]]
        The verdict and one reason per failing image (empty when it passes).
    """
    reasons = []
    for c in comparisons:
        why = []
        if c.lost:
            why.append(f"lost {', '.join(c.lost)}")
        if c.gained:
            why.append(f"gained {', '.join(c.gained)}")
        if c.max_score_diff is not None and c.max_score_diff > bounds.max_score_diff:
            why.append(f"score differs by {c.max_score_diff:.3f} > {bounds.max_score_diff}")
        if not c.same_labels and not why:  # pragma: no cover - implied by lost/gained
            why.append("labels differ")
        if why:
            reasons.append(f"{c.image}: {'; '.join(why)}")
    return not reasons, reasons


def summarize(comparisons: list[ImageComparison]) -> dict:
    """Totals over images: detections on each side, pairs, lost, gained, worst IoU and score difference."""
    ious = [c.min_iou for c in comparisons if c.min_iou is not None]
    diffs = [c.max_score_diff for c in comparisons if c.max_score_diff is not None]
    return {
        "images": len(comparisons),
        "fp32_detections": sum(c.reference for c in comparisons),
        "int8_detections": sum(c.candidate for c in comparisons),
        "paired": sum(c.paired for c in comparisons),
        "lost": sum(len(c.lost) for c in comparisons),
        "gained": sum(len(c.gained) for c in comparisons),
        "min_iou": round(min(ious), 4) if ious else None,
        "max_score_diff": round(max(diffs), 4) if diffs else None,
    }
