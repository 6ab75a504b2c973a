"""Tracks: norfair's tracker within a segment, stitching across segment boundaries, identity votes, summaries.

Detections are the result dicts of a detection job (``label``, ``score``, ``box``, optional
``landmarks`` and ``identity``); frames are ``{"index", "timestamp_ms", "detections"}`` dicts.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Sequence
from typing import Any

import numpy as np

__all__ = [
    "DEFAULT_TRACK_IOU",
    "DEFAULT_TRACK_MAX_GAP",
    "DEFAULT_STITCH_IOU",
    "DEFAULT_MATCH_SHARE",
    "iou",
    "track_segment",
    "stitch_segments",
    "vote_identity",
    "summarize_tracks",
    "summarize_labels",
]

#: Least overlap (intersection over union) of a detection with a track's last box to extend it.
DEFAULT_TRACK_IOU = 0.2
#: Sampled frames a track survives without a detection before it ends (frames).
DEFAULT_TRACK_MAX_GAP = 5
#: Least overlap of a track's last box in one segment with a track's first box in the next to join them.
DEFAULT_STITCH_IOU = 0.3
#: Share of a track's recognised faces that must name one subject for a ``match`` (fraction).
DEFAULT_MATCH_SHARE = 0.5

Frame = dict[str, Any]


def _corners(det: dict[str, Any]) -> np.ndarray:
    b = det["box"]
    return np.array([[b["x"], b["y"]], [b["x"] + b["width"], b["y"] + b["height"]]], dtype=float)


def iou(a: dict[str, Any], b: dict[str, Any]) -> float:
    """Intersection over union of two detections' boxes (0 when they do not overlap)."""
    (ax1, ay1), (ax2, ay2) = _corners(a)
    (bx1, by1), (bx2, by2) = _corners(b)
    w, h = min(ax2, bx2) - max(ax1, bx1), min(ay2, by2) - max(ay1, by1)
    if w <= 0 or h <= 0:
        return 0.0
    inter = w * h
    union = (ax2 - ax1) * (ay2 - ay1) + (bx2 - bx1) * (by2 - by1) - inter
    return float(inter / union) if union > 0 else 0.0


def track_segment(
    frames: Sequence[Frame], min_iou: float = DEFAULT_TRACK_IOU, max_gap: int = DEFAULT_TRACK_MAX_GAP
) -> None:
    """Give each detection of one segment's frames a ``track_id`` (local to the segment), in place.

    norfair's Kalman-filtered tracker (BSD-3) follows the boxes from frame to frame, matching by
    IoU within a label; every detection starts or extends a track (no initialisation delay), so
    every detection has a track id.

    Parameters
    ----------
    frames
        The segment's frames in order; their detections gain ``track_id`` (int, from 1).
    min_iou
        Least IoU between a detection and a track's estimate to extend the track.
    max_gap
        Frames a track survives without a detection (frames).
    """
    from norfair import Detection, Tracker

    tracker = Tracker(
        distance_function="iou",
        distance_threshold=1.0 - min_iou,
        hit_counter_max=max_gap,
        initialization_delay=0,
    )
    spare = 1_000_000  # ids for detections norfair leaves unassigned (not expected with no initialisation delay)
    for pos, frame in enumerate(frames):
        dets = frame["detections"]
        inputs = [
            Detection(_corners(d), scores=np.array([d["score"]] * 2), label=d["label"], data=(pos, i))
            for i, d in enumerate(dets)
        ]
        for obj in tracker.update(inputs):
            at, i = obj.last_detection.data
            if at == pos and obj.id is not None:  # the track took one of this frame's detections
                dets[i]["track_id"] = int(obj.id)
        for d in dets:
            if "track_id" not in d:
                spare += 1
                d["track_id"] = spare


def _track_ends(frames: Sequence[Frame]) -> tuple[dict[int, tuple[int, Frame]], dict[int, tuple[int, Frame]]]:
    """Per local track: (position, detection) of its first and of its last appearance in the segment."""
    first: dict[int, tuple[int, Frame]] = {}
    last: dict[int, tuple[int, Frame]] = {}
    for pos, frame in enumerate(frames):
        for d in frame["detections"]:
            tid = d["track_id"]
            first.setdefault(tid, (pos, d))
            last[tid] = (pos, d)
    return first, last


def stitch_segments(
    segments: Sequence[Sequence[Frame]], min_iou: float = DEFAULT_STITCH_IOU, max_gap: int = DEFAULT_TRACK_MAX_GAP
) -> list[Frame]:
    """Join the segments' frames into one list with video-wide ``track_id`` s (from 1, by first appearance).

    A track that ends within ``max_gap`` frames of the end of a segment continues a track that starts
    within ``max_gap`` frames of the start of the next one when their boxes (the last of one, the
    first of the other) overlap by at least ``min_iou`` and share a label; pairs are chosen by
    optimal assignment on IoU (scipy's Hungarian solver).

    Parameters
    ----------
    segments
        Each segment's frames, in order, as :func:`track_segment` left them.
    min_iou, max_gap
        The joining rule above.

    Returns
    -------
    list of dict
        Every frame, in order, with global track ids.
    """
    from scipy.optimize import linear_sum_assignment

    parent: dict[tuple[int, int], tuple[int, int]] = {}

    def find(x: tuple[int, int]) -> tuple[int, int]:
        while parent.setdefault(x, x) != x:
            parent[x] = parent[parent[x]]
            x = parent[x]
        return x

    ends = [_track_ends(frames) for frames in segments]
    for s in range(len(segments) - 1):
        n = len(segments[s])
        _, last = ends[s]
        first, _ = ends[s + 1]
        a = [(t, d) for t, (pos, d) in sorted(last.items()) if n - 1 - pos < max_gap]
        b = [(t, d) for t, (pos, d) in sorted(first.items()) if pos < max_gap]
        if not a or not b:
            continue
        score = np.array([[iou(da, db) if da["label"] == db["label"] else 0.0 for _, db in b] for _, da in a])
        rows, cols = linear_sum_assignment(-score)
        for r, c in zip(rows, cols, strict=True):
            if score[r, c] >= min_iou:
                parent[find((s + 1, b[c][0]))] = find((s, a[r][0]))
    numbering: dict[tuple[int, int], int] = {}
    merged: list[Frame] = []
    for s, frames in enumerate(segments):
        for frame in frames:
            dets = []
            for d in frame["detections"]:
                root = find((s, d["track_id"]))
                dets.append({**d, "track_id": numbering.setdefault(root, len(numbering) + 1)})
            merged.append({**frame, "detections": dets})
    return merged


def vote_identity(detections: Sequence[dict[str, Any]], match_share: float = DEFAULT_MATCH_SHARE) -> dict | None:
    """The identity of one track, voted over its detections' ``identity`` (when recognition gave one).

    Each detection may carry ``identity`` ``{"subject_id", "subject_name", "decision", "distance"}``:
    the recognition of that face against the gallery with its thresholds. A face whose own
    decision is ``match`` votes for its subject; ``uncertain`` and ``unknown`` faces count among the
    recognised faces but vote for no one. The subject named most often wins; the decision is
    ``match`` when it holds at least ``match_share`` of the recognised faces, ``uncertain`` when it
    leads with fewer, ``unknown`` when no face matched.

    Returns
    -------
    dict or None
        ``{"subject_id", "subject_name", "decision", "votes", "faces", "distance"}`` (``distance``:
        mean over the winner's votes), or None when no detection of the track carried an identity.
    """
    ids = [d["identity"] for d in detections if d.get("identity") is not None]
    if not ids:
        return None
    voting = [i for i in ids if i.get("decision") == "match" and i.get("subject_id")]
    if not voting:
        return {"subject_id": None, "subject_name": None, "decision": "unknown", "votes": 0, "faces": len(ids),
                "distance": None}  # fmt: skip
    votes = Counter(i["subject_id"] for i in voting)
    names = {i["subject_id"]: i.get("subject_name") for i in voting}
    distances: dict[str, list[float]] = defaultdict(list)
    for i in voting:
        distances[i["subject_id"]].append(float(i.get("distance") or 0.0))
    # ties go to the subject with the smaller mean distance, then by id (deterministic)
    subject = min(votes, key=lambda s: (-votes[s], sum(distances[s]) / len(distances[s]), s))
    n = votes[subject]
    return {
        "subject_id": subject,
        "subject_name": names[subject],
        "decision": "match" if n / len(ids) >= match_share else "uncertain",
        "votes": n,
        "faces": len(ids),
        "distance": round(sum(distances[subject]) / n, 4),
    }


def summarize_tracks(frames: Sequence[Frame], match_share: float = DEFAULT_MATCH_SHARE) -> list[dict[str, Any]]:
    """One entry per track of the stitched frames, by track id.

    Returns
    -------
    list of dict
        ``{"track_id", "label", "first_ms", "last_ms", "frames", "best_frame_ms", "best_score", "identity"}``.
    """
    by_track: dict[int, list[tuple[Frame, dict[str, Any]]]] = defaultdict(list)
    for frame in frames:
        for d in frame["detections"]:
            if d.get("track_id") is not None:
                by_track[d["track_id"]].append((frame, d))
    tracks = []
    for tid in sorted(by_track):
        seen = by_track[tid]
        best_frame, best = max(seen, key=lambda fd: (fd[1]["score"], -fd[0]["index"]))
        labels = Counter(d["label"] for _, d in seen)
        tracks.append(
            {
                "track_id": tid,
                "label": labels.most_common(1)[0][0],
                "first_ms": seen[0][0]["timestamp_ms"],
                "last_ms": seen[-1][0]["timestamp_ms"],
                "frames": len(seen),
                "best_frame_ms": best_frame["timestamp_ms"],
                "best_score": round(float(best["score"]), 4),
                "identity": vote_identity([d for _, d in seen], match_share),
            }
        )
    return tracks


def summarize_labels(frames: Sequence[Frame], tracks: Sequence[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """Per label: tracks, detections, frames with at least one, and the best score.

    Returns
    -------
    dict
        ``{label: {"tracks", "detections", "frames", "max_score"}}``, labels sorted.
    """
    out: dict[str, dict[str, Any]] = {}
    for frame in frames:
        for label in {d["label"] for d in frame["detections"]}:
            out.setdefault(label, {"tracks": 0, "detections": 0, "frames": 0, "max_score": 0.0})["frames"] += 1
        for d in frame["detections"]:
            entry = out[d["label"]]
            entry["detections"] += 1
            entry["max_score"] = round(max(entry["max_score"], float(d["score"])), 4)
    for t in tracks:
        out.setdefault(t["label"], {"tracks": 0, "detections": 0, "frames": 0, "max_score": 0.0})["tracks"] += 1
    return dict(sorted(out.items()))
