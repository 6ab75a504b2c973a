"""`detectflow galleries` over a scripted API (the client's calls are tested in tests/unit/client)."""

from __future__ import annotations

import httpx
from typer.testing import CliRunner

from detectflow.cli import galleries as cli
from detectflow.client import Client

GALLERY = {"id": "g1", "name": "class", "created_at": "2026-12-01T12:00:00Z", "subjects": 1, "faces": 2}
JOB = {"id": "j1", "task": "enrol", "status": "succeeded", "created_at": "2026-12-01T12:00:00Z",
       "links": {"self": "/v1/jobs/j1", "result": "/v1/jobs/j1", "annotated": "/v1/jobs/j1/annotated"}}  # fmt: skip


def _patch(monkeypatch, answer) -> list[httpx.Request]:
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        request.read()
        seen.append(request)
        return answer(request)

    monkeypatch.setattr(cli, "open_client", lambda api: Client(api, "k", transport=httpx.MockTransport(handler)))
    return seen


def test_list_prints_the_galleries(monkeypatch):
    _patch(monkeypatch, lambda r: httpx.Response(200, json={"items": [GALLERY]}))
    out = CliRunner().invoke(cli.app, ["list", "--json"])
    assert out.exit_code == 0 and '"id":"g1"' in out.output


def test_enrol_with_new_makes_the_subject_then_one_job_for_all_files(monkeypatch, tmp_path):
    files = []
    for name in ("a.jpg", "b.jpg"):
        (tmp_path / name).write_bytes(name.encode())
        files.append(str(tmp_path / name))

    def answer(r: httpx.Request) -> httpx.Response:
        if r.url.path.endswith("/subjects"):
            return httpx.Response(201, json={"id": "s9", "gallery_id": "g1", "name": "Ada",
                                             "created_at": "2026-12-01T12:00:00Z"})  # fmt: skip
        return httpx.Response(202 if r.method == "POST" else 200, json=JOB)

    seen = _patch(monkeypatch, answer)
    out = CliRunner().invoke(cli.app, ["enrol", "g1", "Ada", *files, "--new"])
    assert out.exit_code == 0, out.output
    assert [r.url.path for r in seen] == ["/v1/galleries/g1/subjects", "/v1/galleries/g1/subjects/s9/faces",
                                          "/v1/jobs/j1"]  # fmt: skip
    assert seen[1].content.count(b'name="file"') == 2


def test_an_api_error_prints_its_code_and_exits_1(monkeypatch):
    _patch(monkeypatch, lambda r: httpx.Response(404, json={"error": {"code": "gallery_not_found", "message": "No."}}))
    out = CliRunner().invoke(cli.app, ["delete", "nope"])
    assert out.exit_code == 1 and "gallery_not_found" in out.output
