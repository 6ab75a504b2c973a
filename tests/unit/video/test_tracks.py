"""Unit tests of tracking (norfair), stitching across segments, identity votes and summaries (pure)."""

from __future__ import annotations

import copy

from detectflow.video.tracks import (
    iou,
    stitch_segments,
    summarize_labels,
    summarize_tracks,
    track_segment,
    vote_identity,
)


def _det(x: float, y: float, label: str = "face", score: float = 0.9, **extra) -> dict:
    return {"label": label, "score": score, "box": {"x": x, "y": y, "width": 40, "height": 40}, **extra}


def _frames(n: int, start: int = 0) -> list[dict]:
    """Two objects moving apart: a face to the right, a person to the left."""
    return [
        {"index": i, "timestamp_ms": i * 200.0, "detections": [_det(10 + 3 * i, 10), _det(300 - 3 * i, 80, "person")]}
        for i in range(start, start + n)
    ]


def _ids(frames):
    return [[d["track_id"] for d in f["detections"]] for f in frames]


def test_iou_of_boxes():
    assert iou(_det(0, 0), _det(0, 0)) == 1.0
    assert iou(_det(0, 0), _det(100, 100)) == 0.0
    assert abs(iou(_det(0, 0), _det(20, 0)) - 1 / 3) < 1e-9


def test_track_segment_follows_each_moving_object_as_one_track():
    frames = _frames(12)
    track_segment(frames)
    assert _ids(frames) == [[1, 2]] * 12


def test_track_segment_keeps_labels_apart_and_starts_a_track_for_a_newcomer():
    # Given a face, then a person appearing on top of it in frame 3
    frames = [{"index": i, "timestamp_ms": i * 200.0, "detections": [_det(10, 10)]} for i in range(6)]
    for f in frames[3:]:
        f["detections"].append(_det(10, 10, "person"))
    track_segment(frames)
    ids = _ids(frames)
    assert {i[0] for i in ids} == {1}
    assert {i[1] for i in ids[3:]} == {2}


def test_stitch_segments_joins_tracks_across_a_boundary():
    # Given one sequence cut in three segments, each tracked on its own
    whole = _frames(15)
    segments = [copy.deepcopy(whole[a : a + 5]) for a in (0, 5, 10)]
    for seg in segments:
        track_segment(seg)
    # When stitched
    merged = stitch_segments(segments)
    # Then the result equals tracking the whole sequence at once
    tracked = copy.deepcopy(whole)
    track_segment(tracked)
    assert _ids(merged) == _ids(tracked) == [[1, 2]] * 15
    assert [f["index"] for f in merged] == list(range(15))


def test_stitch_segments_leaves_apart_what_does_not_overlap_or_ends_early():
    a = [{"index": 0, "timestamp_ms": 0.0, "detections": [_det(0, 0)]}] + [
        {"index": i, "timestamp_ms": i * 200.0, "detections": []} for i in range(1, 10)
    ]
    b = [{"index": 10, "timestamp_ms": 2000.0, "detections": [_det(0, 0), _det(200, 200)]}]
    for seg in (a, b):
        track_segment(seg)
    merged = stitch_segments([a, b], max_gap=3)
    # the face of frame 0 ended 9 frames before the boundary: a new track, not a continuation
    assert _ids(merged)[0] == [1]
    assert _ids(merged)[-1] == [2, 3]


def test_vote_identity_decides_match_uncertain_unknown():
    def faces(*subjects):
        return [
            _det(0, 0, identity={"subject_id": s, "subject_name": s and s.title(), "decision": "match" if s else "unknown",
                                 "distance": 0.3 if s else 0.8})
            for s in subjects
        ]  # fmt: skip

    match = vote_identity(faces("ada", "ada", "ada", None, "bob"))
    assert match == {"subject_id": "ada", "subject_name": "Ada", "decision": "match", "votes": 3, "faces": 5,
                     "distance": 0.3}  # fmt: skip
    assert vote_identity(faces("ada", "bob", None, None, None))["decision"] == "uncertain"
    assert vote_identity(faces(None, None))["decision"] == "unknown"
    assert vote_identity(faces(None, None))["subject_id"] is None
    assert vote_identity([_det(0, 0)]) is None  # recognition did not run


def test_vote_identity_counts_uncertain_faces_but_lets_only_matches_vote():
    near = {"subject_id": "ada", "subject_name": "Ada", "decision": "uncertain", "distance": 0.55}
    sure = {"subject_id": "ada", "subject_name": "Ada", "decision": "match", "distance": 0.4}
    assert vote_identity([_det(0, 0, identity=near)] * 3)["decision"] == "unknown"
    assert vote_identity([_det(0, 0, identity=sure)] + [_det(0, 0, identity=near)] * 2)["decision"] == "uncertain"
    # a tie goes to the nearer subject
    bob = {**sure, "subject_id": "bob", "subject_name": "Bob", "distance": 0.2}
    assert vote_identity([_det(0, 0, identity=sure), _det(0, 0, identity=bob)])["subject_id"] == "bob"


def test_summarize_tracks_and_labels():
    frames = _frames(5)
    frames[2]["detections"][0]["score"] = 0.99
    track_segment(frames)
    tracks = summarize_tracks(frames)
    assert [(t["track_id"], t["label"], t["frames"]) for t in tracks] == [(1, "face", 5), (2, "person", 5)]
    face = tracks[0]
    assert (face["first_ms"], face["last_ms"], face["best_frame_ms"], face["best_score"]) == (0.0, 800.0, 400.0, 0.99)
    labels = summarize_labels(frames, tracks)
    assert labels == {
        "face": {"tracks": 1, "detections": 5, "frames": 5, "max_score": 0.99},
        "person": {"tracks": 1, "detections": 5, "frames": 5, "max_score": 0.9},
    }
