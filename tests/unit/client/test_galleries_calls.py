"""The gallery, upload and recognition builders: what each sends, and the typed answers read back."""

from __future__ import annotations

import asyncio
import json

import httpx
import pytest

from detectflow.client import AsyncClient, Client
from detectflow.client import calls
from detectflow.galleries.records import Gallery, GalleryExport, MatchResponse, Subject
from detectflow.jobs.records import JobPublic

JOB = {"id": "j1", "task": "enrol", "status": "queued", "created_at": "2026-12-01T12:00:00Z",
       "links": {"self": "/v1/jobs/j1", "result": "/v1/jobs/j1", "annotated": "/v1/jobs/j1/annotated"}}  # fmt: skip
GALLERY = {"id": "g1", "name": "class", "created_at": "2026-12-01T12:00:00Z"}
SUBJECT = {"id": "s1", "gallery_id": "g1", "name": "Ada", "created_at": "2026-12-01T12:00:00Z"}


class Recorder:
    """A transport answering each request from a function of it, keeping the requests."""

    def __init__(self, answer) -> None:
        self.answer = answer
        self.requests: list[httpx.Request] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        request.read()
        self.requests.append(request)
        return self.answer(request)


def _client(answer) -> tuple[Client, Recorder]:
    rec = Recorder(answer)
    return Client("http://api.test", "k", transport=httpx.MockTransport(rec), sleep=lambda s: None), rec


def _parts(request: httpx.Request) -> list[tuple[str, bytes]]:
    """(name, body) of each multipart part, in order."""
    boundary = request.headers["Content-Type"].split("boundary=")[1].encode()
    out = []
    for chunk in request.content.split(b"--" + boundary)[1:-1]:
        head, _, body = chunk.partition(b"\r\n\r\n")
        name = head.split(b'name="')[1].split(b'"')[0].decode()
        out.append((name, body[:-2]))
    return out


def test_submit_sends_a_url_string_as_source_url_without_a_file():
    call = calls.submit_job("https://example.org/a.jpg", "face")
    assert call.data == {"task": "face", "source_url": "https://example.org/a.jpg"} and call.files is None


def test_submit_sends_the_recognition_options_and_the_reference_image():
    call = calls.submit_job(b"a", "verify", reference=b"b", gallery="g1", subject="s1", top_k=2,
                            match_threshold=0.4, uncertain_threshold=0.55, cache=False)  # fmt: skip
    assert call.data == {"task": "verify", "gallery": "g1", "subject": "s1", "top_k": "2", "match_threshold": "0.4",
                         "uncertain_threshold": "0.55", "cache": "false"}  # fmt: skip
    assert call.files == [("file", ("image", b"a")), ("reference", ("image", b"b"))]


def test_submit_takes_an_upload_id_instead_of_a_file_and_wants_exactly_one_source():
    call = calls.submit_job(None, "face", upload_id="u1")
    assert call.data == {"task": "face", "upload_id": "u1"} and call.files is None
    with pytest.raises(ValueError, match="exactly one"):
        calls.submit_job(b"a", "face", upload_id="u1")
    with pytest.raises(ValueError, match="exactly one"):
        calls.submit_job(None, "face")
    with pytest.raises(ValueError, match="reference"):
        calls.submit_job("https://example.org/a.jpg", "verify", reference=b"b")


def test_enrol_repeats_the_file_part_and_sends_face_index_and_box():
    client, rec = _client(lambda r: httpx.Response(202, json=JOB))
    job = client.enrol_faces("g1", "s1", [b"one", b"two"], face_index=1, box=(10, 20, 30.5, 40))
    req = rec.requests[0]
    assert job.id == "j1" and req.url.path == "/v1/galleries/g1/subjects/s1/faces"
    assert req.headers["Idempotency-Key"].startswith("dfc-")
    parts = _parts(req)
    assert [p for p in parts if p[0] == "file"] == [("file", b"one"), ("file", b"two")]
    assert ("face_index", b"1") in parts and ("box", b"10,20,30.5,40") in parts


def test_enrol_one_image_and_wait_polls_the_job():
    done = {**JOB, "status": "succeeded", "started_at": "2026-12-01T12:00:01Z", "finished_at": "2026-12-01T12:00:02Z"}
    client, rec = _client(lambda r: httpx.Response(202 if r.method == "POST" else 200,
                                                   json=JOB if r.method == "POST" else done))  # fmt: skip
    job = client.enrol_faces("g1", "s1", b"one", wait=True)
    assert job.status.value == "succeeded"
    assert [r.method for r in rec.requests] == ["POST", "GET"]
    assert _parts(rec.requests[0]) == [("file", b"one")]


def test_gallery_crud_sends_json_and_reads_the_models():
    def answer(r: httpx.Request) -> httpx.Response:
        if r.method == "DELETE":
            return httpx.Response(204)
        if r.url.path == "/v1/galleries" and r.method == "GET":
            return httpx.Response(200, json={"items": [GALLERY]})
        if r.url.path.endswith("/subjects") and r.method == "POST":
            return httpx.Response(201, json=SUBJECT)
        if r.url.path.endswith("/subjects"):
            return httpx.Response(200, json={"items": [SUBJECT]})
        if r.url.path.endswith("/faces"):
            return httpx.Response(200, json={"items": [{"id": "f1", "subject_id": "s1"}]})
        return httpx.Response(201 if r.method == "POST" else 200, json=GALLERY)

    client, rec = _client(answer)
    gallery = client.create_gallery("class", match_threshold=0.45, metadata={"room": 3})
    assert isinstance(gallery, Gallery) and gallery.id == "g1"
    assert json.loads(rec.requests[0].content) == {"name": "class", "thresholds": {"match": 0.45, "uncertain": 0.6},
                                                   "metadata": {"room": 3}}  # fmt: skip
    assert [g.id for g in client.list_galleries()] == ["g1"]
    assert client.get_gallery("g1").name == "class"
    subject = client.create_subject("g1", "Ada", metadata={"n": 1})
    assert isinstance(subject, Subject) and json.loads(rec.requests[-1].content) == {"name": "Ada", "metadata": {"n": 1}}
    assert [s.id for s in client.list_subjects("g1")] == ["s1"]
    assert [f.id for f in client.list_faces("g1", "s1")] == ["f1"]
    assert client.delete_face("g1", "s1", "f1") is None
    assert client.delete_subject("g1", "s1") is None
    assert client.delete_gallery("g1") is None
    assert [(r.method, r.url.path) for r in rec.requests[-3:]] == [
        ("DELETE", "/v1/galleries/g1/subjects/s1/faces/f1"), ("DELETE", "/v1/galleries/g1/subjects/s1"),
        ("DELETE", "/v1/galleries/g1"),
    ]  # fmt: skip


def test_create_gallery_is_not_resent_after_a_lost_answer():
    assert calls.create_gallery("x").idempotent is False
    assert calls.create_subject("g", "x").idempotent is False
    assert calls.match("g", [[0.0]]).idempotent is True


def test_export_import_and_match_round_trip_the_models():
    export = {"format": "detectflow.gallery/v1", "name": "class", "subjects": [
        {"id": "s1", "name": "Ada", "faces": [{"id": "f1", "embedding": [0.1] * 128}]}]}  # fmt: skip
    answer = {"gallery_id": "g1", "gallery_version": 3, "thresholds": {"match": 0.5, "uncertain": 0.6},
              "results": [{"match": {"subject_id": "s1", "subject_name": "Ada", "distance": 0.2, "decision": "match"},
                           "candidates": [{"subject_id": "s1", "subject_name": "Ada", "distance": 0.2}]}]}  # fmt: skip

    def respond(r: httpx.Request) -> httpx.Response:
        if r.url.path.endswith("/export"):
            return httpx.Response(200, json=export)
        if r.url.path.endswith("/match"):
            return httpx.Response(200, json=answer)
        return httpx.Response(201, json=GALLERY)

    client, rec = _client(respond)
    exported = client.export_gallery("g1")
    assert isinstance(exported, GalleryExport) and exported.subjects[0].faces[0].embedding[0] == 0.1
    assert client.import_gallery(exported).id == "g1"
    assert json.loads(rec.requests[1].content)["subjects"][0]["id"] == "s1"
    result = client.match("g1", [[0.1] * 128], top_k=1, match_threshold=0.4)
    assert isinstance(result, MatchResponse) and result.results[0].match.subject_id == "s1"
    body = json.loads(rec.requests[2].content)
    assert body["top_k"] == 1 and body["thresholds"] == {"match": 0.4, "uncertain": 0.6} and len(body["embeddings"]) == 1


@pytest.mark.parametrize("presigned", [True, False])
def test_upload_puts_the_bytes_with_the_key_only_to_the_api(presigned):
    url = "https://bucket.s3.test/up/u1?X-Amz-Signature=abc" if presigned else "http://api.test/v1/uploads/u1"

    def respond(r: httpx.Request) -> httpx.Response:
        if r.method == "POST":
            return httpx.Response(201, json={"upload_id": "u1", "url": url, "expires_in": 900, "presigned": presigned})
        return httpx.Response(200, text="") if presigned else httpx.Response(200, json={"upload_id": "u1", "size": 5})

    client, rec = _client(respond)
    assert client.upload(b"bytes") == "u1"
    post, put = rec.requests
    assert post.url.path == "/v1/uploads" and post.headers["Authorization"] == "Bearer k"
    assert put.method == "PUT" and str(put.url) == url and put.content == b"bytes"
    assert ("Authorization" in put.headers) is not presigned


def test_verify_wants_a_reference_or_a_subject_of_a_gallery():
    client, _ = _client(lambda r: httpx.Response(202, json=JOB))
    with pytest.raises(ValueError):
        client.verify(b"a")
    with pytest.raises(ValueError):
        client.verify(b"a", b"b", subject="s1", gallery="g1")
    with pytest.raises(ValueError):
        client.verify(b"a", subject="s1")


def test_recognize_without_wait_submits_a_recognize_job():
    client, rec = _client(lambda r: httpx.Response(202, json=JOB))
    client.recognize(b"a", "g1", top_k=5, cache=False, wait=False)
    parts = dict(_parts(rec.requests[0]))
    assert parts["task"] == b"recognize" and parts["gallery"] == b"g1" and parts["top_k"] == b"5"
    assert parts["cache"] == b"false" and parts["file"] == b"a"


def test_async_client_has_the_gallery_and_upload_calls():
    def respond(r: httpx.Request) -> httpx.Response:
        if r.url.path == "/v1/uploads":
            return httpx.Response(201, json={"upload_id": "u1", "url": "https://s3.test/u1", "expires_in": 9,
                                             "presigned": True})  # fmt: skip
        if r.method == "PUT":
            return httpx.Response(200)
        if r.url.path.endswith("/faces"):
            return httpx.Response(200, json={"items": []})
        return httpx.Response(200, json={"items": [GALLERY]})

    rec = Recorder(respond)

    async def main():
        async with AsyncClient("http://api.test", "k", transport=httpx.MockTransport(rec)) as client:
            return await client.upload(b"x"), await client.list_galleries(), await client.list_faces("g1", "s1")

    upload_id, galleries, faces = asyncio.run(main())
    assert upload_id == "u1" and galleries[0].id == "g1" and faces == []
    assert "Authorization" not in rec.requests[1].headers


def test_match_above_the_synchronous_limit_answers_the_match_job():
    job = {**JOB, "task": "match"}
    client, rec = _client(lambda r: httpx.Response(202, json=job, headers={"Location": "/v1/jobs/j1"}))
    answer = client.match("g1", [[0.1] * 128] * 1001)
    assert isinstance(answer, JobPublic) and answer.id == "j1" and answer.task == "match"
    assert len(json.loads(rec.requests[0].content)["embeddings"]) == 1001


def test_update_gallery_sends_only_the_given_fields():
    client, rec = _client(lambda r: httpx.Response(200, json={**GALLERY, "version": 4}))
    gallery = client.update_gallery("g1", match_threshold=0.45)
    req = rec.requests[0]
    assert (req.method, req.url.path) == ("PATCH", "/v1/galleries/g1") and gallery.version == 4
    assert json.loads(req.content) == {"thresholds": {"match": 0.45}}
    client.update_gallery("g1", name="class-4", metadata={})
    assert json.loads(rec.requests[1].content) == {"name": "class-4", "metadata": {}}
