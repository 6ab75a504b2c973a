"""Videos by reference (upload_id above the API's upload cap, source_url): the worker reads and probes them."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from urllib.parse import urlsplit

import pytest

from detectflow.blobs import input_name, upload_name
from tests.integration.conftest import wait_job
from tests.integration.test_video import all_frames
from tests.support.images import image_bytes
from tests.support.origins import serve_files
from tests.support.videos import truncated, video_bytes

pytestmark = [pytest.mark.redis, pytest.mark.models, pytest.mark.slow]

#: The API's cap on what it reads itself, far below the carphone clip (588,804 bytes).
SMALL_CAP = 100_000


def _upload(client, data: bytes) -> str:
    up = client.post("/v1/uploads").json()
    put = client.put(urlsplit(up["url"]).path, content=data)
    assert put.status_code == 200 and put.json()["size"] == len(data), put.text
    return up["upload_id"]


def _by_upload(client, upload_id: str, task: str = "face", **form):
    return client.post("/v1/jobs", data={"task": task, "upload_id": upload_id, "cache": "false", **form})


def test_a_video_above_the_upload_cap_goes_to_the_worker_by_upload_id(make_client, run_worker, blobs):
    # Given an API that reads at most 100 kB itself and a face worker
    client = make_client(api_max_upload_bytes=SMALL_CAP)
    run_worker("face")
    clip = video_bytes("carphone_pristine")
    assert len(clip) > SMALL_CAP
    # When carphone (588 kB) is uploaded and submitted by upload_id with video options
    upload_id = _upload(client, clip)
    resp = _by_upload(client, upload_id, sample_fps="10", start_ms="1000", max_frames="6")
    # Then the API accepts it unread (no probe: the stream's size is not known yet)
    assert resp.status_code == 202, resp.text
    job = wait_job(client, resp.json()["id"], timeout=120)
    # And the worker probes it and keeps the options: six frames from 1 s at 10 fps
    assert job["status"] == "succeeded", job
    assert job["result"]["video"]["width"] == 176 and job["result"]["video"]["frames_sampled"] == 6
    assert [f["index"] for f in all_frames(client, job["id"])] == [30, 32, 35, 38, 41, 44]
    assert len(job["result"]["tracks"]) == 1
    # And the upload became the job's content-addressed input (the annotated video draws from it)
    assert blobs.names() == [input_name(hashlib.sha256(clip).hexdigest())]
    assert client.get(f"/v1/jobs/{job['id']}/annotated").status_code == 200
    again = _by_upload(client, upload_id)
    assert (again.status_code, again.json()["error"]["code"]) == (404, "upload_not_found")


def test_a_video_by_reference_above_its_own_cap_is_refused_with_a_code(make_client):
    client = make_client(api_max_upload_bytes=SMALL_CAP, video_max_bytes=200_000)
    resp = _by_upload(client, _upload(client, video_bytes("carphone_pristine")))
    assert resp.status_code == 413, resp.text
    error = resp.json()["error"]
    assert error["code"] == "payload_too_large" and error["details"] == {"max_video_bytes": 200_000, "size": 588_804}


def test_what_the_worker_finds_wrong_in_a_referenced_upload_fails_the_job(make_client, run_worker, blobs):
    client = make_client(api_max_upload_bytes=SMALL_CAP)
    run_worker("face")
    # an image above the API's cap is no video (its first bytes say so): refused at submit, as before
    png = image_bytes("astronaut")
    assert len(png) > SMALL_CAP
    image = _by_upload(client, _upload(client, png))
    assert (image.status_code, image.json()["error"]["code"]) == (413, "payload_too_large"), image.text
    # a truncated video (its index lost) fails with invalid_video when the worker probes it
    cut_id = _upload(client, truncated("carphone_pristine"))
    cut = wait_job(client, _by_upload(client, cut_id).json()["id"])
    assert (cut["status"], cut["error"]["code"]) == ("failed", "invalid_video"), cut
    # a limit the container shows fails at the worker with the code the API would have answered
    long = make_client(api_max_upload_bytes=SMALL_CAP)
    upload_id = _upload(long, video_bytes("carphone_pristine"))
    wait = wait_job(long, _by_upload(long, upload_id, start_ms="60000").json()["id"])
    assert (wait["status"], wait["error"]["code"]) == ("failed", "invalid_video"), wait
    # the referenced uploads became the jobs' inputs (the refused image's upload stays until it expires)
    assert upload_name(cut_id) not in blobs.names() and upload_name(upload_id) not in blobs.names()


@pytest.fixture
def origin() -> Iterator[str]:
    """An HTTP server on 127.0.0.1 serving carphone and an image."""
    files = {"/carphone.mp4": video_bytes("carphone_pristine"), "/astronaut.png": image_bytes("astronaut")}
    with serve_files(files) as url:
        yield url


def test_a_source_url_video_keeps_its_options_and_its_own_cap(make_client, run_worker, origin):
    # Given sources capped at 100 kB for images and 1 MB for videos
    client = make_client(source_allow_http=True)
    run_worker("face", source_allow_http=True, source_max_bytes=SMALL_CAP, video_max_bytes=1024 * 1024)
    # When carphone is submitted by URL with video options
    resp = client.post("/v1/jobs", data={"task": "face", "source_url": f"{origin}/carphone.mp4", "sample_fps": "2",
                                         "max_frames": "4"})  # fmt: skip
    assert resp.status_code == 202, resp.text
    job = wait_job(client, resp.json()["id"], timeout=120)
    # Then the worker fetched it under the video cap, probed it and sampled it as asked
    assert job["status"] == "succeeded", job
    assert job["result"]["video"]["frames_sampled"] == 4
    assert [f["index"] for f in all_frames(client, job["id"])] == [0, 14, 29, 44]
    # And an image above the image cap still fails source_too_large
    image = client.post("/v1/jobs", data={"task": "face", "source_url": f"{origin}/astronaut.png"})
    failed = wait_job(client, image.json()["id"])
    assert failed["error"]["code"] == "source_too_large" and str(SMALL_CAP) in failed["error"]["message"]


def test_video_options_on_a_source_url_image_fail_the_job(make_client, run_worker, origin):
    client = make_client(source_allow_http=True)
    run_worker("face", source_allow_http=True)
    resp = client.post("/v1/jobs", data={"task": "face", "source_url": f"{origin}/astronaut.png", "sample_fps": "2"})
    failed = wait_job(client, resp.json()["id"])
    assert (failed["status"], failed["error"]["code"]) == ("failed", "validation_error"), failed
    plain = client.post("/v1/jobs", data={"task": "face", "source_url": f"{origin}/astronaut.png"})
    assert wait_job(client, plain.json()["id"])["status"] == "succeeded"
