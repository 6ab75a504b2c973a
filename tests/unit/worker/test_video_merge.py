"""Unit tests of merging a video job's segments into its result (pure)."""

from __future__ import annotations

from datetime import timedelta

from detectflow.config import Task
from detectflow.jobs.records import JobRecord, JobStatus, utcnow
from detectflow.jobs.results import ModelRef
from detectflow.video.tracks import track_segment
from detectflow.worker.tasks.video import merge_segments

MODEL = ModelRef(name="m", version="1", sha256="0" * 64, provider="CPUExecutionProvider")


def _part(indices: list[int], x0: float) -> dict:
    frames = [
        {"index": i, "timestamp_ms": i * 40.0,
         "detections": [{"label": "face", "score": 0.9, "box": {"x": x0 + k, "y": 5.0, "width": 30.0, "height": 30.0}}]}
        for k, i in enumerate(indices)
    ]  # fmt: skip
    track_segment(frames)
    return {"frames": frames, "decode_s": 0.01, "inference_s": 0.1, "missing": 0}


def _job() -> JobRecord:
    now = utcnow()
    return JobRecord(id="j", task=Task.face, status=JobStatus.running, media="video",
                     created_at=now - timedelta(seconds=2), started_at=now - timedelta(seconds=1))  # fmt: skip


def test_merge_segments_stitches_tracks_and_sums_timings():
    plan = {"fps": 25.0, "frame_count": 50, "width": 64, "height": 48, "track": True, "segments": [[0, 5], [10, 15]]}
    result, frames = merge_segments(_job(), plan, [_part([0, 5], 0.0), _part([10, 15], 2.0)], MODEL)
    assert [f["index"] for f in frames] == [0, 5, 10, 15]
    assert {d["track_id"] for f in frames for d in f["detections"]} == {1}
    assert result.video.model_dump() == {"duration_ms": 2000.0, "fps": 25.0, "width": 64, "height": 48, "frames_sampled": 4}
    assert [(t.track_id, t.frames, t.first_ms, t.last_ms) for t in result.tracks] == [(1, 4, 0.0, 600.0)]
    assert result.segments == 2 and result.labels["face"].detections == 4
    assert result.timings_ms.inference == 200.0 and result.timings_ms.decode == 20.0
    assert 900 <= result.timings_ms.queued <= 1100 and result.timings_ms.total >= 2000


def test_merge_segments_without_tracking_has_no_tracks():
    plan = {"fps": 25.0, "frame_count": 50, "width": 64, "height": 48, "track": False, "segments": [[0]]}
    part = {"frames": [{"index": 0, "timestamp_ms": 0.0, "detections": []}], "decode_s": 0.0, "inference_s": 0.0}
    result, frames = merge_segments(_job(), plan, [part], MODEL)
    assert result.tracks == [] and result.labels == {} and frames == part["frames"]


def test_video_progress_estimates_the_time_left():
    job = _job().model_copy(update={"video_frames_total": 40, "video_frames_done": 10,
                                    "video_segments_total": 4, "video_segments_done": 1})  # fmt: skip
    progress = job.video_progress(now=job.started_at + timedelta(seconds=5))
    assert progress.model_dump() == {"frames_done": 10, "frames_total": 40, "segments_done": 1,
                                     "segments_total": 4, "eta_seconds": 15.0}  # fmt: skip
    assert job.model_copy(update={"status": JobStatus.succeeded}).video_progress() is None
    assert _job().video_progress() is None  # not split yet


def test_video_files_are_written_once_per_process_and_evicted_when_unused():
    from detectflow.worker.tasks.video import _VideoFiles

    files, loads = _VideoFiles(keep=1), []

    def load(name):
        return lambda: loads.append(name) or name.encode()

    with files.open("a", load("a")) as a1, files.open("a", load("a")) as a2:
        assert a1 == a2 and a1.read_bytes() == b"a" and loads == ["a"]
        with files.open("b", load("b")) as b:
            assert a1.exists()  # over the bound but in use: kept
        assert b.exists()
    assert not a1.exists() and b.exists()  # a evicted once unused; b is the one kept
    with files.open("b", load("b")):
        pass
    assert loads == ["a", "b"]


def test_video_files_report_an_expired_video():
    import pytest

    from detectflow.jobs.errors import DetectflowError
    from detectflow.worker.tasks.video import _VideoFiles

    with pytest.raises(DetectflowError) as err, _VideoFiles().open("gone", lambda: None):
        pass
    assert err.value.code == "image_expired"


def _faces(identities: list[dict | None], embeddings: list[list[float] | None] | None = None) -> dict:
    frames = []
    for k, identity in enumerate(identities):
        det = {"label": "face", "score": 0.9 + k / 100, "box": {"x": 1.0 + k, "y": 5.0, "width": 30.0, "height": 30.0}}
        if identity is not None:
            det["identity"] = identity
        if embeddings is not None and embeddings[k] is not None:
            det["embedding"] = embeddings[k]
        frames.append({"index": k * 5, "timestamp_ms": k * 200.0, "detections": [det]})
    track_segment(frames)
    return {"frames": frames, "decode_s": 0.0, "inference_s": 0.0, "missing": 0}


def test_merge_segments_votes_a_recognize_jobs_track_identity():
    ada = {"subject_id": "s1", "subject_name": "Ada", "decision": "match", "distance": 0.3}
    nobody = {"subject_id": None, "subject_name": None, "decision": "unknown", "distance": 0.9}
    plan = {"fps": 25.0, "frame_count": 50, "width": 64, "height": 48, "track": True, "segments": [[0, 5, 10]],
            "task": "recognize", "gallery_id": "g1", "thresholds": {"match": 0.5, "uncertain": 0.6}}  # fmt: skip
    part = {**_faces([ada, ada, nobody]), "gallery_version": 4}
    result, frames = merge_segments(_job(), plan, [part], MODEL, MODEL)
    (track,) = result.tracks
    assert track.identity.model_dump() == {"subject_id": "s1", "subject_name": "Ada", "decision": "match",
                                           "votes": 2, "faces": 3, "distance": 0.3}  # fmt: skip
    assert (result.gallery_id, result.gallery_version, result.thresholds) == ("g1", 4, {"match": 0.5, "uncertain": 0.6})
    assert result.embedding_model == MODEL and track.embedding is None
    assert frames[2]["detections"][0]["identity"]["decision"] == "unknown"


def test_merge_segments_gives_an_embed_jobs_track_its_best_faces_embedding():
    plan = {"fps": 25.0, "frame_count": 50, "width": 64, "height": 48, "track": True, "segments": [[0, 5, 10]],
            "task": "embed"}  # fmt: skip
    part = _faces([None, None, None], [[0.1, 0.2], [0.3, 0.4], [0.5, 0.6]])  # scores rise: the last is best
    result, frames = merge_segments(_job(), plan, [part], MODEL, MODEL)
    (track,) = result.tracks
    assert track.embedding == [0.5, 0.6] and track.identity is None and result.gallery_id is None
    assert [f["detections"][0]["embedding"] for f in frames] == [[0.1, 0.2], [0.3, 0.4], [0.5, 0.6]]
    dumped = result.model_dump(mode="json")
    assert "gallery_id" not in dumped and dumped["tracks"][0]["embedding"] == [0.5, 0.6]
