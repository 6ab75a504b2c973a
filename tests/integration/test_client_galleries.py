"""detectflow.client's galleries, recognition and uploads against the real stack: a `detectflow api` process,
a recognition worker (face detector + embedder) and Redis."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from detectflow.client import ApiError, Client, JobStatus, calls
from detectflow.galleries.records import GalleryExport
from detectflow.jobs.records import JobPublic
from tests.integration.conftest import STORAGES, storage_env
from tests.support.media import face_photo_path
from tests.support.origins import serve_files
from tests.support.processes import TEST_ADMIN_KEY, cli_env, start_api

pytestmark = [pytest.mark.redis, pytest.mark.models, pytest.mark.slow]

SCOPES = ["jobs:write", "jobs:read", "galleries:write", "galleries:read"]


@pytest.fixture
def api(settings, tmp_path: Path):
    """A real `detectflow api` process sharing the workers' blob store; yields its URL.

    It accepts http `source_url`s on loopback (the `origin` below), as the workers started with that option do.
    """
    env = cli_env(redis_url=settings.redis_url, redis_prefix=settings.redis_prefix, source_allow_http=True,
                  webhook_allow_cidrs=",".join(settings.webhook_allow_cidrs), **storage_env(settings))  # fmt: skip
    proc, url = start_api(env, tmp_path / "api.log")
    yield url
    proc.stop()


@pytest.fixture
def origin() -> Iterator[str]:
    """An HTTP server on 127.0.0.1 serving /obama2.jpg (anything else 404)."""
    files = {"/obama2.jpg": face_photo_path("obama2").read_bytes()}

    with serve_files(files) as url:
        yield url


def _tenant_client(url: str) -> Client:
    """A client with a key of a new tenant allowed jobs and galleries."""
    with Client(url, TEST_ADMIN_KEY) as admin:
        key = admin.create_key(f"galleries-{uuid.uuid4().hex[:8]}", "client-galleries", SCOPES).key
    return Client(url, key)


def _done(job):
    assert job.status is JobStatus.succeeded, job.error
    return job.result


def test_client_enrols_recognizes_verifies_matches_and_exports(api, run_worker):
    run_worker("recognition")
    with _tenant_client(api) as client:
        # a gallery and a subject, enrolled from one photo (and a second image in the same job)
        gallery = client.create_gallery("staff", metadata={"site": "test"})
        assert [g.id for g in client.list_galleries()] == [gallery.id]
        obama = client.create_subject(gallery.id, "Barack Obama", metadata={"role": "test"})
        assert [s.id for s in client.list_subjects(gallery.id)] == [obama.id]
        enrolled = _done(client.enrol_faces(gallery.id, obama.id, [face_photo_path("obama")], wait=True, timeout=120))
        assert [i.status for i in enrolled.images] == ["enrolled"] and enrolled.enrolled == 1
        faces = client.list_faces(gallery.id, obama.id)
        assert [f.id for f in faces] == [enrolled.images[0].face_id]
        assert client.get_gallery(gallery.id).faces == 1 and client.get_subject(gallery.id, obama.id).faces == 1

        # recognize 1:N: another photo of him matches, Biden is unknown (never given the nearest subject)
        found = _done(client.recognize(face_photo_path("obama2"), gallery.id, timeout=120))
        (face,) = found.faces
        assert face.match.decision == "match" and face.match.subject_id == obama.id and face.match.distance <= 0.5
        other = _done(client.recognize(face_photo_path("biden"), gallery.id, top_k=1, timeout=120))
        (face,) = other.faces
        assert face.match.decision == "unknown" and face.match.subject_id is None
        assert [c.subject_id for c in face.candidates] == [obama.id]
        # a per-request threshold; the same photo again, so the cache is skipped to make the worker judge it
        strict = _done(client.recognize(face_photo_path("obama2"), gallery.id, match_threshold=0.05,
                                        uncertain_threshold=0.06, cache=False, timeout=120))  # fmt: skip
        assert strict.faces[0].match.decision == "unknown"

        # verify 1:1: against a second image, and against the enrolled subject
        same = _done(client.verify(face_photo_path("obama2"), face_photo_path("obama3"), cache=False, timeout=120))
        assert same.same is True and same.distance <= 0.5
        differ = _done(client.verify(face_photo_path("obama"), face_photo_path("biden"), timeout=120))
        assert differ.same is False and differ.decision == "unknown"
        by_subject = _done(client.verify(face_photo_path("obama3"), subject=obama.id, gallery=gallery.id,
                                         cache=False, timeout=120))  # fmt: skip
        assert by_subject.same is True

        # batch match: embeddings from embed jobs, answered in order
        embeddings = []
        for name in ("biden", "obama2"):
            job = client.wait_job(client.submit(face_photo_path(name), "embed", cache=False).id, timeout=120)
            embeddings.append(_done(job).faces[0].embedding)
        matched = client.match(gallery.id, embeddings)
        assert [(r.match.decision, r.match.subject_id) for r in matched.results] == [("unknown", None),
                                                                                      ("match", obama.id)]  # fmt: skip
        with pytest.raises(ApiError) as info:
            client.match(gallery.id, [[0.0] * 64])
        assert info.value.code == "embedding_dimension_mismatch"
        # above the synchronous limit: the match job, whose result holds the answers in order
        big = client.match(gallery.id, embeddings * 501)
        assert isinstance(big, JobPublic) and big.task == "match"
        job = _done(client.wait_job(big.id, timeout=120))
        assert [r.match.subject_id for r in job.results] == [None, obama.id] * 501
        # PATCH: a stricter match threshold makes obama2 uncertain
        assert client.update_gallery(gallery.id, match_threshold=0.3).thresholds.match == 0.3
        assert [r.match.decision for r in client.match(gallery.id, embeddings).results] == ["unknown", "uncertain"]
        client.update_gallery(gallery.id, match_threshold=0.5)

        # export / import: the copy holds the same subjects and embeddings, and matches alike
        exported = client.export_gallery(gallery.id)
        assert isinstance(exported, GalleryExport) and exported.subjects[0].name == "Barack Obama"
        copy = client.import_gallery(exported)
        assert client.export_gallery(copy.id) == exported
        assert [r.match.decision for r in client.match(copy.id, embeddings).results] == ["unknown", "match"]

        # deletes: a face, the subject, both galleries
        client.delete_face(gallery.id, obama.id, faces[0].id)
        assert client.list_faces(gallery.id, obama.id) == []
        client.delete_subject(gallery.id, obama.id)
        client.delete_gallery(copy.id)
        client.delete_gallery(gallery.id)
        assert client.list_galleries() == []
        with pytest.raises(ApiError) as info:
            client.get_gallery(gallery.id)
        assert info.value.status_code == 404 and info.value.code == "gallery_not_found"


@pytest.mark.parametrize("storage", STORAGES)
def test_client_uploads_then_recognizes_by_upload_id(storage, api, run_worker):
    # Given a gallery holding Obama (an S3 store answers a pre-signed URL, sent without the key)
    run_worker("recognition")
    with _tenant_client(api) as client:
        gallery = client.create_gallery("uploads")
        obama = client.create_subject(gallery.id, "Barack Obama")
        _done(client.enrol_faces(gallery.id, obama.id, face_photo_path("obama"), wait=True, timeout=120))
        assert client.send(calls.create_upload()).presigned is (storage == "s3")
        # When obama2 is uploaded and a recognize job names the upload
        upload_id = client.upload(face_photo_path("obama2"))
        assert len(upload_id) == 64
        job = client.submit(task="recognize", upload_id=upload_id, gallery=gallery.id, cache=False)
        # Then the worker ran on the uploaded photo, and the upload is consumed
        result = _done(client.wait_job(job.id, timeout=120))
        assert result.faces[0].match.subject_id == obama.id
        with pytest.raises(ApiError) as info:
            client.submit(task="recognize", upload_id=upload_id, gallery=gallery.id)
        assert info.value.code == "upload_not_found"


def test_client_submits_a_url_string_as_source_url(api, run_worker, origin):
    # Given a gallery holding Obama and a worker that may fetch http sources on loopback
    run_worker("recognition", source_allow_http=True)
    with _tenant_client(api) as client:
        gallery = client.create_gallery("by-url")
        obama = client.create_subject(gallery.id, "Barack Obama")
        _done(client.enrol_faces(gallery.id, obama.id, face_photo_path("obama"), wait=True, timeout=120))
        # When the photo is given as a URL string, Then the worker fetched it and recognised him
        result = _done(client.recognize(f"{origin}/obama2.jpg", gallery.id, timeout=120))
        assert result.faces[0].match.subject_id == obama.id
        missing = client.recognize(f"{origin}/missing.jpg", gallery.id, timeout=120)
        assert missing.status is JobStatus.failed and missing.error.code == "source_unreachable"
