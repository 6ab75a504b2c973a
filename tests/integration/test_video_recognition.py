"""Video jobs of the recognition pool (recognize, embed): real worker, real models, a gallery enrolled from a frame."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from tests.integration.conftest import submit, wait_job
from tests.integration.test_video import all_frames
from tests.support.media import face_photo_path
from tests.support.videos import video_bytes, video_path

pytestmark = [pytest.mark.redis, pytest.mark.models, pytest.mark.slow]


def _frame_png(name: str, index: int) -> bytes:
    cap = cv2.VideoCapture(str(video_path(name)))
    cap.set(cv2.CAP_PROP_POS_FRAMES, index)
    ok, frame = cap.read()
    cap.release()
    assert ok
    return cv2.imencode(".png", frame)[1].tobytes()


def _gallery_of(client, person: str, image: bytes) -> tuple[str, str]:
    gallery = client.post("/v1/galleries", json={"name": f"of {person}"}).json()["id"]
    subject = client.post(f"/v1/galleries/{gallery}/subjects", json={"name": person}).json()["id"]
    resp = client.post(f"/v1/galleries/{gallery}/subjects/{subject}/faces", files=[("file", ("face.png", image))])
    assert resp.status_code == 202, resp.text
    enrolled = wait_job(client, resp.json()["id"])
    assert enrolled["status"] == "succeeded" and enrolled["result"]["enrolled"] == 1, enrolled
    return gallery, subject


def test_recognize_on_a_video_votes_each_tracks_identity(client, run_worker):
    # Given a recognition worker and a gallery holding the carphone face, enrolled from one frame (frame 60)
    run_worker("recognition")
    gallery, subject = _gallery_of(client, "Carphone caller", _frame_png("carphone_pristine", 60))
    # When carphone is submitted for recognition against it
    resp = submit(client, video_bytes("carphone_pristine"), task="recognize", name="c.mp4", gallery=gallery)
    assert resp.status_code == 202, resp.text
    job = wait_job(client, resp.json()["id"], timeout=180)
    # Then its one face track is that subject, a match voted over its faces
    assert job["status"] == "succeeded", job
    result = job["result"]
    (track,) = result["tracks"]
    identity = track["identity"]
    assert (identity["subject_id"], identity["subject_name"], identity["decision"]) == (
        subject, "Carphone caller", "match"
    )
    assert identity["faces"] == track["frames"] == 21 and identity["votes"] * 2 >= identity["faces"]
    assert identity["distance"] <= result["thresholds"]["match"]
    print(f"\nFIGURE carphone recognize (enrolled from frame 60): {identity['votes']}/{identity['faces']} faces "
          f"matched, mean distance {identity['distance']}, job {result['timings_ms']['total']:.0f} ms "
          f"(inference {result['timings_ms']['inference']:.0f} ms)")  # fmt: skip
    assert result["gallery_id"] == gallery and result["embedding_model"]["name"] == "dlib-resnet-v1"
    # And each frame's face says its own match
    frames = all_frames(client, job["id"])
    assert all(f["detections"][0]["identity"]["subject_id"] in (subject, None) for f in frames)
    assert sum(f["detections"][0]["identity"]["decision"] == "match" for f in frames) == identity["votes"]
    # And the annotated video draws it
    assert client.get(f"/v1/jobs/{job['id']}/annotated").status_code == 200

    # Given a gallery of someone else (face_recognition's photo of Biden)
    other, _ = _gallery_of(client, "Joe Biden", face_photo_path("biden").read_bytes())
    # When the same video is recognised against it, with fewer frames
    resp = submit(client, video_bytes("carphone_pristine"), task="recognize", name="c.mp4", gallery=other,
                  sample_fps="2")  # fmt: skip
    job = wait_job(client, resp.json()["id"], timeout=180)
    # Then the track is unknown: no face matched
    assert job["status"] == "succeeded", job
    (track,) = job["result"]["tracks"]
    nearest = min(f["detections"][0]["identity"]["distance"] for f in all_frames(client, job["id"]))
    print(f"\nFIGURE carphone recognize against Biden: {track['frames']} faces, nearest distance {nearest}")
    assert track["identity"] == {"subject_id": None, "subject_name": None, "decision": "unknown", "votes": 0,
                                 "faces": track["frames"], "distance": None}  # fmt: skip


def test_embed_on_a_video_gives_each_track_its_best_faces_embedding(client, run_worker):
    run_worker("recognition")
    resp = submit(client, video_bytes("carphone_pristine"), task="embed", name="c.mp4", max_frames="8")
    assert resp.status_code == 202, resp.text
    job = wait_job(client, resp.json()["id"], timeout=180)
    assert job["status"] == "succeeded", job
    (track,) = job["result"]["tracks"]
    assert len(track["embedding"]) == 128 and track["identity"] is None
    # the per-face embeddings are in the frames, not the job; the track's is its best-scored face's
    frames = all_frames(client, job["id"])
    assert len(frames) == 8 and all(len(f["detections"][0]["embedding"]) == 128 for f in frames)
    best = max((f["detections"][0] for f in frames), key=lambda d: d["score"])
    assert np.allclose(best["embedding"], track["embedding"])
    assert "embedding" not in str(job["result"]["labels"])


def test_recognize_on_a_video_needs_a_gallery_of_the_tenant(client):
    resp = submit(client, video_bytes("carphone_pristine"), task="recognize", name="c.mp4", gallery="nope")
    assert (resp.status_code, resp.json()["error"]["code"]) == (404, "gallery_not_found")
