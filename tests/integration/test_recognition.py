"""Face recognition on the real stack: a recognition worker (face detector + embedder), galleries in Redis."""

from __future__ import annotations

import numpy as np
import pytest

from tests.integration.conftest import submit, wait_job
from tests.support.images import image_bytes
from tests.support.media import face_photo_path

pytestmark = [pytest.mark.redis, pytest.mark.models]


def _photo(name: str) -> bytes:
    return face_photo_path(name).read_bytes()


def _done(client, resp) -> dict:
    assert resp.status_code in (200, 202), resp.text
    job = wait_job(client, resp.json()["id"])
    assert job["status"] == "succeeded", job.get("error")
    return job["result"]


def _gallery(client, name: str = "staff") -> str:
    resp = client.post("/v1/galleries", json={"name": name})
    assert resp.status_code == 201, resp.text
    return resp.json()["id"]


def _subject(client, gallery: str, name: str) -> str:
    resp = client.post(f"/v1/galleries/{gallery}/subjects", json={"name": name, "metadata": {"role": "test"}})
    assert resp.status_code == 201, resp.text
    return resp.json()["id"]


def _enrol(client, gallery: str, subject: str, images: list[tuple[str, bytes]], **form) -> dict:
    files = [("file", (name, data)) for name, data in images]
    return _done(client, client.post(f"/v1/galleries/{gallery}/subjects/{subject}/faces", files=files, data=form))


def _embedding(client, name: str) -> list[float]:
    result = _done(client, submit(client, _photo(name), task="embed"))
    (face,) = result["faces"]
    return face["embedding"]


def test_recognition_enrol_recognize_verify_match_and_export(client, run_worker):
    run_worker("recognition")
    gallery = _gallery(client)
    obama = _subject(client, gallery, "Barack Obama")

    # embed: every face with box, landmarks, quality and a 128-d embedding
    embedded = _done(client, submit(client, _photo("obama"), task="embed"))
    (face,) = embedded["faces"]
    assert len(face["embedding"]) == 128 and len(face["landmarks"]) == 5
    assert face["quality"]["score"] > 0.9 and face["quality"]["size"] > 50
    assert embedded["embedding_model"]["name"] == "dlib-resnet-v1"

    # enrol: two images in one request, one per image reported (a photo without a face is no_face)
    enrolled = _enrol(client, gallery, obama, [("obama.jpg", _photo("obama")), ("coffee.png", image_bytes("coffee"))])
    assert [i["status"] for i in enrolled["images"]] == ["enrolled", "no_face"]
    assert enrolled["enrolled"] == 1 and enrolled["gallery_version"] >= 2
    faces = client.get(f"/v1/galleries/{gallery}/subjects/{obama}/faces").json()["items"]
    assert [f["id"] for f in faces] == [enrolled["images"][0]["face_id"]]
    assert client.get(f"/v1/galleries/{gallery}").json()["faces"] == 1

    # recognize 1:N: the same person matches, another person is unknown, never the nearest subject
    for name in ("obama2", "obama3"):
        result = _done(client, submit(client, _photo(name), task="recognize", gallery=gallery))
        (rec,) = result["faces"]
        assert rec["match"]["decision"] == "match" and rec["match"]["subject_id"] == obama, result
        assert rec["match"]["distance"] <= 0.5
    biden = _done(client, submit(client, _photo("biden"), task="recognize", gallery=gallery, top_k=1))
    (rec,) = biden["faces"]
    assert rec["match"]["decision"] == "unknown" and rec["match"]["subject_id"] is None
    assert rec["match"]["distance"] > 0.6
    assert [c["subject_id"] for c in rec["candidates"]] == [obama]  # nearest, but not a match
    # a stricter threshold per request turns a match into unknown
    strict = _done(client, submit(client, _photo("obama2"), task="recognize", gallery=gallery, match_threshold=0.05,
                                  uncertain_threshold=0.06))  # fmt: skip
    assert strict["faces"][0]["match"]["decision"] == "unknown" and strict["thresholds"]["match"] == 0.05

    # verify 1:1: two images, or an image and a subject
    same = _done(client, client.post("/v1/jobs", data={"task": "verify"},
                                     files={"file": ("a", _photo("obama2")), "reference": ("b", _photo("obama3"))}))  # fmt: skip
    assert same["same"] is True and same["distance"] <= 0.5
    other = _done(client, client.post("/v1/jobs", data={"task": "verify"},
                                      files={"file": ("a", _photo("obama")), "reference": ("b", _photo("biden"))}))  # fmt: skip
    assert other["same"] is False and other["decision"] == "unknown" and other["distance"] > 0.6
    by_subject = _done(client, submit(client, _photo("obama3"), task="verify", gallery=gallery, subject=obama))
    assert by_subject["same"] is True and by_subject["faces"][1]["source"] == f"subject:{obama}"

    # batch match, synchronous, in order
    queries = [_embedding(client, "biden"), _embedding(client, "obama2")]
    matched = client.post(f"/v1/galleries/{gallery}/match", json={"embeddings": queries})
    assert matched.status_code == 200, matched.text
    decisions = [(r["match"]["decision"], r["match"]["subject_id"]) for r in matched.json()["results"]]
    assert decisions == [("unknown", None), ("match", obama)]
    wrong = client.post(f"/v1/galleries/{gallery}/match", json={"embeddings": [[0.0] * 64]})
    assert wrong.status_code == 422 and wrong.json()["error"]["code"] == "embedding_dimension_mismatch"

    # export / import round trip: the copy holds the same subjects and embeddings, and matches alike
    exported = client.get(f"/v1/galleries/{gallery}/export").json()
    assert exported["format"] == "detectflow.gallery/v1" and exported["subjects"][0]["name"] == "Barack Obama"
    copy = client.post("/v1/galleries/import", json=exported)
    assert copy.status_code == 201, copy.text
    again = client.get(f"/v1/galleries/{copy.json()['id']}/export").json()
    assert again == exported
    copied = client.post(f"/v1/galleries/{copy.json()['id']}/match", json={"embeddings": queries}).json()
    assert [r["match"]["decision"] for r in copied["results"]] == ["unknown", "match"]
    assert np.allclose(exported["subjects"][0]["faces"][0]["embedding"], face["embedding"], atol=1e-6)
    # a gallery's own thresholds decide its jobs: obama2 is ~0.38 from obama, uncertain between 0.3 and 0.45
    strict_gallery = client.post("/v1/galleries/import",
                                 json={**exported, "thresholds": {"match": 0.3, "uncertain": 0.45}}).json()  # fmt: skip
    judged = _done(client, submit(client, _photo("obama2"), task="recognize", gallery=strict_gallery["id"]))
    assert judged["faces"][0]["match"]["decision"] == "uncertain" and judged["faces"][0]["match"]["subject_id"] == obama

    # deleting the face changes the version: the worker's cached matrix is refreshed, obama2 is unknown now
    face_id = faces[0]["id"]
    assert client.delete(f"/v1/galleries/{gallery}/subjects/{obama}/faces/{face_id}").status_code == 204
    assert client.delete(f"/v1/galleries/{gallery}/subjects/{obama}/faces/{face_id}").status_code == 404
    after = _done(client, submit(client, _photo("obama2"), task="recognize", gallery=gallery))
    assert after["faces"][0]["match"] == {"subject_id": None, "subject_name": None, "distance": None,
                                          "decision": "unknown"}  # fmt: skip
    assert after["gallery_version"] > enrolled["gallery_version"]

    # subjects and galleries go away with their faces
    assert client.delete(f"/v1/galleries/{gallery}/subjects/{obama}").status_code == 204
    assert client.get(f"/v1/galleries/{gallery}/subjects").json()["items"] == []
    assert client.delete(f"/v1/galleries/{gallery}").status_code == 204
    assert client.get(f"/v1/galleries/{gallery}").json()["error"]["code"] == "gallery_not_found"
    assert submit(client, _photo("obama2"), task="recognize", gallery=gallery).status_code == 404


def test_recognition_batch_match_above_the_synchronous_limit_is_a_job_with_answers_in_order(
    client, make_client, run_worker, settings
):
    run_worker("recognition")
    gallery = _gallery(client, "big-batch")
    obama = _subject(client, gallery, "Barack Obama")
    _enrol(client, gallery, obama, [("obama.jpg", _photo("obama"))])
    biden, obama2 = _embedding(client, "biden"), _embedding(client, "obama2")
    n = settings.recognition_max_match_batch + 1  # 1,001: one over the synchronous limit
    queries = [biden if i % 3 == 0 else obama2 for i in range(n)]
    accepted = client.post(f"/v1/galleries/{gallery}/match", json={"embeddings": queries, "top_k": 1})
    assert accepted.status_code == 202, accepted.text
    job = accepted.json()
    assert job["task"] == "match" and accepted.headers["Location"].endswith(f"/v1/jobs/{job['id']}")
    done = wait_job(client, job["id"])
    assert done["status"] == "succeeded", done.get("error")
    result = done["result"]
    assert len(result["results"]) == n and result["gallery_id"] == gallery
    decisions = [(r["match"]["decision"], r["match"]["subject_id"]) for r in result["results"]]
    assert decisions == [("unknown", None) if i % 3 == 0 else ("match", obama) for i in range(n)]
    # the same answers as the synchronous path gives for the first ones (float32 sums: equal to 1e-5)
    sync = client.post(f"/v1/galleries/{gallery}/match", json={"embeddings": queries[:3], "top_k": 1}).json()
    for a, b in zip(sync["results"], result["results"][:3], strict=True):
        assert a["match"]["decision"] == b["match"]["decision"] and a["match"]["subject_id"] == b["match"]["subject_id"]
        assert a["match"]["distance"] == pytest.approx(b["match"]["distance"], abs=1e-5)
    no_image = client.get(f"/v1/jobs/{job['id']}/annotated")
    assert no_image.status_code == 404 and "no image" in no_image.json()["error"]["message"]
    # above the job bound: a clear refusal, before anything is stored
    bounded = make_client(recognition_max_match_job=n)
    refused = bounded.post(f"/v1/galleries/{gallery}/match", json={"embeddings": queries + [biden]})
    assert refused.status_code == 413 and refused.json()["error"]["code"] == "match_batch_too_large"
    assert refused.json()["error"]["details"]["max_embeddings"] == n
    # a key that could not read the job is refused it (it may still match up to the synchronous limit)
    reader = client.post("/v1/keys", json={"tenant": "default", "name": "m", "scopes": ["galleries:read"]}).json()
    as_reader = make_client(headers={"Authorization": f"Bearer {reader['key']}"})
    forbidden = as_reader.post(f"/v1/galleries/{gallery}/match", json={"embeddings": queries})
    assert forbidden.status_code == 403 and forbidden.json()["error"]["details"]["required_scope"] == "jobs:read"
    assert as_reader.post(f"/v1/galleries/{gallery}/match", json={"embeddings": queries[:2]}).status_code == 200
    wrong = client.post(f"/v1/galleries/{gallery}/match", json={"embeddings": [[0.0] * 64] * n})
    assert wrong.status_code == 422 and wrong.json()["error"]["code"] == "embedding_dimension_mismatch"
    # match is not a task POST /v1/jobs takes
    via_jobs = client.post("/v1/jobs", data={"task": "match", "gallery": gallery}, files={"file": ("a", b"x")})
    assert via_jobs.status_code == 422 and "galleries" in via_jobs.json()["error"]["message"]


def test_recognition_patched_thresholds_decide_the_next_recognize_job(client, run_worker):
    run_worker("recognition")
    gallery = _gallery(client, "patched")
    obama = _subject(client, gallery, "Barack Obama")
    _enrol(client, gallery, obama, [("obama.jpg", _photo("obama"))])
    before = _done(client, submit(client, _photo("obama2"), task="recognize", gallery=gallery))
    assert before["faces"][0]["match"]["decision"] == "match" and before["thresholds"]["match"] == 0.5
    version = client.get(f"/v1/galleries/{gallery}").json()["version"]
    # obama2 is ~0.38 from obama: with match 0.3 it is uncertain (the worker's cached matrix refreshes)
    patched = client.patch(f"/v1/galleries/{gallery}", json={"name": "patched-2", "thresholds": {"match": 0.3}})
    assert patched.status_code == 200, patched.text
    body = patched.json()
    assert body["name"] == "patched-2" and body["thresholds"] == {"match": 0.3, "uncertain": 0.6}
    assert body["version"] == version + 1 and body["faces"] == 1
    after = _done(client, submit(client, _photo("obama2"), task="recognize", gallery=gallery))
    assert after["thresholds"] == {"match": 0.3, "uncertain": 0.6} and after["gallery_version"] == version + 1
    assert after["faces"][0]["match"]["decision"] == "uncertain" and after["faces"][0]["match"]["subject_id"] == obama
    matched = client.post(f"/v1/galleries/{gallery}/match", json={"embeddings": [_embedding(client, "obama2")]})
    assert matched.json()["thresholds"]["match"] == 0.3 and matched.json()["results"][0]["match"]["decision"] == "uncertain"
    # refused: out of order once merged, and unknown fields; neither changes the gallery
    bad = client.patch(f"/v1/galleries/{gallery}", json={"thresholds": {"uncertain": 0.2}})
    assert bad.status_code == 422 and bad.json()["error"]["code"] == "validation_error"
    assert "uncertain" in bad.json()["error"]["message"]
    assert client.patch(f"/v1/galleries/{gallery}", json={"id": "x"}).status_code == 422
    assert client.get(f"/v1/galleries/{gallery}").json()["version"] == version + 1
    assert client.patch(f"/v1/galleries/{'0' * 32}", json={"name": "x"}).status_code == 404


def test_recognition_enrol_picks_a_face_by_index_or_box(client, run_worker):
    run_worker("recognition")
    gallery = _gallery(client)
    subject = _subject(client, gallery, "someone")
    # two faces side by side: several_faces unless face_index or box says which
    left, right = (np.frombuffer(_photo(n), np.uint8) for n in ("obama", "biden"))
    import cv2

    a, b = cv2.imdecode(left, cv2.IMREAD_COLOR), cv2.imdecode(right, cv2.IMREAD_COLOR)
    h = min(a.shape[0], b.shape[0])
    both = np.hstack([a[:h], b[:h]])
    data = cv2.imencode(".jpg", both)[1].tobytes()
    several = _enrol(client, gallery, subject, [("both.jpg", data)])
    assert several["images"][0]["status"] == "several_faces" and several["images"][0]["faces_found"] == 2
    by_index = _enrol(client, gallery, subject, [("both.jpg", data)], face_index="1")
    assert by_index["images"][0]["status"] == "enrolled"
    by_box = _enrol(client, gallery, subject, [("both.jpg", data)], box=f"{a.shape[1]},0,{b.shape[1]},{h}")
    (picked,) = by_box["images"]
    assert picked["status"] == "enrolled" and picked["box"]["x"] >= a.shape[1] - 5
    out_of_range = _enrol(client, gallery, subject, [("both.jpg", data)], face_index="7")
    assert out_of_range["images"][0]["status"] == "face_not_found"


def test_recognition_routes_answer_what_the_openapi_document_declares(client, make_client, settings):
    from tests.integration.test_openapi import Conformance, _closed_port, _truncated_png

    doc = client.get("/openapi.json").json()
    c = Conformance(doc)
    ops = {op["operationId"] for _, _, op in c.routes if "galleries" in op.get("tags", [])}
    assert ops == {"create_gallery", "list_galleries", "import_gallery", "get_gallery", "update_gallery", "delete_gallery",
                   "export_gallery", "match_embeddings", "create_subject", "list_subjects", "get_subject",
                   "delete_subject", "enrol_faces", "list_faces", "delete_face"}  # fmt: skip
    # Success answers (the enrolment stays queued: no worker here)
    g = c.check(client.post("/v1/galleries", json={"name": "conf"})).json()["id"]
    c.check(client.get("/v1/galleries"))
    c.check(client.get(f"/v1/galleries/{g}"))
    s = c.check(client.post(f"/v1/galleries/{g}/subjects", json={"name": "a"})).json()["id"]
    c.check(client.get(f"/v1/galleries/{g}/subjects"))
    c.check(client.get(f"/v1/galleries/{g}/subjects/{s}"))
    faces = f"/v1/galleries/{g}/subjects/{s}/faces"
    photo = ("file", ("obama.jpg", _photo("obama")))
    assert c.check(client.post(faces, files=[photo, photo])).status_code == 202
    c.check(client.get(faces))
    export = {"name": "copy", "subjects": [{"id": "p1", "name": "p", "faces": [{"id": "f1", "embedding": [0.1] * 128}]}]}
    copy = c.check(client.post("/v1/galleries/import", json=export)).json()["id"]
    c.check(client.get(f"/v1/galleries/{copy}/export"))
    c.check(client.post(f"/v1/galleries/{copy}/match", json={"embeddings": [[0.1] * 128]}))
    small = make_client(recognition_max_match_batch=1, recognition_max_match_job=2)
    assert c.check(small.post(f"/v1/galleries/{copy}/match", json={"embeddings": [[0.1] * 128] * 2})).status_code == 202
    c.check(client.patch(f"/v1/galleries/{copy}", json={"thresholds": {"match": 0.4}}))
    c.check(client.delete(f"/v1/galleries/{copy}/subjects/p1/faces/f1"))
    c.check(client.delete(f"/v1/galleries/{copy}/subjects/p1"))
    c.check(client.delete(f"/v1/galleries/{copy}"))

    # Refusals: 404, 422, 413, 400, 415
    missing = "0" * 32
    for path in (f"/v1/galleries/{missing}", f"/v1/galleries/{missing}/export", f"/v1/galleries/{missing}/subjects",
                 f"/v1/galleries/{g}/subjects/{missing}", f"/v1/galleries/{g}/subjects/{missing}/faces"):  # fmt: skip
        assert c.check(client.get(path)).status_code == 404
    for path in (f"/v1/galleries/{missing}", f"/v1/galleries/{g}/subjects/{missing}", f"{faces}/{missing}"):
        assert c.check(client.delete(path)).status_code == 404
    assert c.check(client.post(f"/v1/galleries/{missing}/match", json={"embeddings": [[0.0] * 128]})).status_code == 404
    assert c.check(client.post(f"/v1/galleries/{missing}/subjects", json={"name": "x"})).status_code == 404
    assert c.check(client.post(f"/v1/galleries/{g}/subjects/{missing}/faces", files=[photo])).status_code == 404
    assert c.check(client.post("/v1/galleries", json={"name": ""})).status_code == 422
    assert c.check(client.post(f"/v1/galleries/{g}/subjects", json={})).status_code == 422
    bad_import = {**export, "dimension": 64}
    assert c.check(client.post("/v1/galleries/import", json=bad_import)).status_code == 422
    assert c.check(client.post(f"/v1/galleries/{g}/match", json={"embeddings": []})).status_code == 422
    assert c.check(small.post(f"/v1/galleries/{g}/match", json={"embeddings": [[0.0] * 128] * 3})).status_code == 413
    assert c.check(client.patch(f"/v1/galleries/{g}", json={"thresholds": {"match": 0.9}})).status_code == 422
    assert c.check(client.patch(f"/v1/galleries/{missing}", json={"name": "x"})).status_code == 404
    assert c.check(client.post(faces, files=[photo], data={"box": "1,2"})).status_code == 422
    assert c.check(client.post(faces, files=[("file", ("a.png", _truncated_png()))])).status_code == 400
    assert c.check(client.post(faces, files=[("file", ("a.txt", b"not an image"))])).status_code == 415
    tiny = make_client(api_max_image_pixels=100)
    assert c.check(tiny.post(faces, files=[photo])).status_code == 413
    full = make_client(api_max_queue_depth=1)
    assert c.check(full.post(faces, files=[photo])).status_code == 429  # the queued enrolment fills the queue

    # A key lacking the scopes (403), a rate-limited key (429), no key (401), Redis unreachable (503)
    lacking = client.post("/v1/keys", json={"tenant": "conf", "name": "r", "scopes": ["jobs:read"]}).json()["key"]
    limited = client.post("/v1/keys", json={"tenant": "conf", "name": "l", "scopes": ["galleries:read"],
                                            "rate_limit_per_second": 0.01, "burst": 1}).json()["key"]  # fmt: skip
    as_limited = make_client(headers={"Authorization": f"Bearer {limited}"})
    match = {"embeddings": [[0.0] * 128]}
    assert c.check(as_limited.post(f"/v1/galleries/{missing}/match", json=match)).status_code == 404  # spends it
    assert c.check(as_limited.post(f"/v1/galleries/{missing}/match", json=match)).status_code == 429
    calls = {
        "create": lambda cl: cl.post("/v1/galleries", json={"name": "x"}),
        "list": lambda cl: cl.get("/v1/galleries"),
        "import": lambda cl: cl.post("/v1/galleries/import", json=export),
        "get": lambda cl: cl.get(f"/v1/galleries/{g}"),
        "update": lambda cl: cl.patch(f"/v1/galleries/{g}", json={"name": "y"}),
        "delete": lambda cl: cl.delete(f"/v1/galleries/{g}"),
        "export": lambda cl: cl.get(f"/v1/galleries/{g}/export"),
        "match": lambda cl: cl.post(f"/v1/galleries/{g}/match", json=match),
        "create_subject": lambda cl: cl.post(f"/v1/galleries/{g}/subjects", json={"name": "x"}),
        "list_subjects": lambda cl: cl.get(f"/v1/galleries/{g}/subjects"),
        "get_subject": lambda cl: cl.get(f"/v1/galleries/{g}/subjects/{s}"),
        "delete_subject": lambda cl: cl.delete(f"/v1/galleries/{g}/subjects/{s}"),
        "enrol": lambda cl: cl.post(faces, files=[photo]),
        "list_faces": lambda cl: cl.get(faces),
        "delete_face": lambda cl: cl.delete(f"{faces}/{missing}"),
    }
    anonymous = make_client(headers={})
    as_lacking = make_client(headers={"Authorization": f"Bearer {lacking}"})
    down = make_client(redis_url=f"redis://127.0.0.1:{_closed_port()}/0")
    for name, call in calls.items():
        assert c.check(call(anonymous)).status_code == 401, name
        assert c.check(call(as_lacking)).status_code == 403, name
    for name, call in calls.items():
        assert c.check(call(down)).status_code == 503, name

    left = {(op, st) for op, st in c.declared() - c.seen if st != "500" and op in ops}
    assert not left, f"declared but never answered: {sorted(left)}"
