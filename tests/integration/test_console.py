"""The web console at /ui in a real headless Chromium, against a real API, face worker and redis-server."""

from __future__ import annotations

import base64
import io
import re
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import numpy as np
import pytest
from PIL import Image

from detectflow.cli.up import RedisServer
from detectflow.jobs.stores.redis import RedisJobStore, connect
from tests.support.browser import loopback_page
from tests.support.images import image_bytes
from tests.support.processes import AUTH, TEST_ADMIN_KEY, cli_env, start_api, start_worker

pytestmark = [pytest.mark.browser, pytest.mark.redis, pytest.mark.models]

#: Longest the console may take to show a finished job (milliseconds, Playwright's unit).
DEFAULT_JOB_TIMEOUT_MS = 60_000
#: The colour the console draws face boxes in (draw.js PALETTE[0]); the astronaut has no such pixel.
FACE_RGB = (255, 0, 255)

# Playwright's drop: a DataTransfer holding the file, built in the page (the test's own code, not the console's)
_DATA_TRANSFER = """([b64, name, type]) => {
  const bin = atob(b64);
  const bytes = new Uint8Array(bin.length);
  for (let i = 0; i < bin.length; i++) bytes[i] = bin.charCodeAt(i);
  const dt = new DataTransfer();
  dt.items.add(new File([bytes], name, { type }));
  return dt;
}"""


@pytest.fixture(scope="module")
def stack(redis_server: RedisServer, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A real `detectflow api` and one face `detectflow worker` on a key prefix of this module's own."""
    logs = tmp_path_factory.mktemp("console")
    prefix = f"test{uuid.uuid4().hex[:10]}"
    env = cli_env(redis_url=redis_server.url, redis_prefix=prefix, state_dir=logs / "state")
    api, url = start_api(env, logs / "api.log")
    store = RedisJobStore(connect(redis_server.url), prefix, 3600)
    worker = start_worker(env, logs / "worker.log", "face", wait_ready=lambda: store.live_workers("face", 60))
    try:
        yield url
    finally:
        worker.stop()
        api.stop()


@pytest.fixture
def page(browser, stack: str) -> Iterator[object]:
    """A fresh tab on the console that may reach 127.0.0.1 only; fails the test on a CSP violation or a blocked request."""
    tab, blocked = loopback_page(browser)
    problems: list[str] = []
    tab.on("console", lambda m: m.type == "error" and problems.append(m.text))
    tab.on("pageerror", lambda e: problems.append(str(e)))
    tab.goto(f"{stack}/ui", wait_until="load")
    tab.wait_for_selector("body[data-ready=true]")
    yield tab
    tab.context.close()
    assert blocked == []
    assert not [p for p in problems if "Content Security Policy" in p or "Uncaught" in p], problems


def _sign_in(page, key: str = TEST_ADMIN_KEY) -> None:
    page.fill("#key", key)
    page.click("#signin-form button[type=submit]")


def _drop(page, selector: str, data: bytes, name: str, media_type: str) -> None:
    transfer = page.evaluate_handle(_DATA_TRANSFER, [base64.b64encode(data).decode(), name, media_type])
    page.dispatch_event(selector, "drop", {"dataTransfer": transfer})


def _submit_astronaut(page) -> str:
    """Sign in, drop the astronaut, wait until its boxes are drawn; the job's id."""
    _sign_in(page)
    page.wait_for_selector("#view-submit:not([hidden])")
    _drop(page, "#drop", image_bytes("astronaut"), "astronaut.png", "image/png")
    page.wait_for_selector("#result:not([hidden]) .detection", timeout=DEFAULT_JOB_TIMEOUT_MS)
    return page.get_attribute("#canvas", "data-job-id")


def _face_pixels(shot: Image.Image) -> np.ndarray:
    rgb = np.asarray(shot.convert("RGB")).astype(int)
    r, g, b = rgb[..., 0], rgb[..., 1], rgb[..., 2]
    return (r > 200) & (g < 80) & (b > 200)


def test_console_is_served_with_a_strict_content_security_policy(stack: str) -> None:
    # Given the running API; When /ui is fetched without a key
    first = httpx.get(f"{stack}/ui")
    index = httpx.get(f"{stack}/ui/")
    # Then it redirects to /ui/, whose page is public but locked down
    assert first.status_code == 307 and first.headers["location"].endswith("/ui/")
    assert index.status_code == 200 and index.headers["content-type"].startswith("text/html")
    csp = dict(part.strip().split(" ", 1) for part in index.headers["content-security-policy"].split(";"))
    assert csp["script-src"] == "'self'" and csp["default-src"] == "'none'"
    assert csp["frame-ancestors"] == "'none'" and index.headers["x-frame-options"] == "DENY"
    assert index.headers["x-content-type-options"] == "nosniff"
    # no inline script: every <script> names its file, and no element carries an event-handler attribute
    scripts = re.findall(r"<script\b[^>]*>", index.text)
    assert scripts and all('src="' in s for s in scripts)
    assert not re.search(r"\son[a-z]+=", index.text)
    module = httpx.get(f"{stack}/ui/js/main.js")
    assert module.status_code == 200 and "javascript" in module.headers["content-type"]
    assert module.headers["content-security-policy"] == index.headers["content-security-policy"]
    # and the data it shows still needs a key
    assert httpx.get(f"{stack}/v1/jobs").status_code == 401
    assert httpx.get(f"{stack}/ui/missing.js").status_code == 404


def test_console_sign_in_with_a_wrong_key_shows_an_error(page) -> None:
    # Given the sign-in form; When a key the API does not know is entered
    _sign_in(page, "dfk_not-a-real-key-0123456789abcdefghijklmn")
    # Then the API's reason is shown and the console stays closed
    error = page.wait_for_selector("#signin-error:not([hidden])")
    assert "Sign-in failed" in error.inner_text() and "unknown or revoked" in error.inner_text()
    assert page.is_hidden("#console")
    assert page.evaluate("sessionStorage.length") == 0


def test_console_draws_the_astronauts_face_box_on_the_canvas(page, stack: str, tmp_path: Path) -> None:
    # Given a signed-in console; When the astronaut is dropped on it
    job_id = _submit_astronaut(page)
    # Then the job ran, and the DOM lists what the API answered: the face, its score and its box
    job = httpx.get(f"{stack}/v1/jobs/{job_id}", headers=AUTH).json()
    assert job["status"] == "succeeded" and page.inner_text("#job-status").endswith("succeeded")
    [face] = job["result"]["detections"]
    item = page.locator(".detection").first
    assert page.locator(".detection").count() == 1
    assert item.get_attribute("data-label") == "face"
    assert float(item.get_attribute("data-score")) == pytest.approx(face["score"])
    assert f"face {face['score'] * 100:.1f}%" in item.inner_text()
    assert page.get_attribute("#canvas", "data-drawn") == "1"
    assert page.evaluate("sessionStorage.getItem('detectflow.apiKey')") == TEST_ADMIN_KEY
    # and the canvas (screenshot) shows the photo with the box drawn around the face, in the face colour
    shot_path = tmp_path / "console.png"
    page.screenshot(path=str(shot_path))
    canvas = Image.open(io.BytesIO(page.locator("#canvas").screenshot(path=str(tmp_path / "canvas.png"))))
    assert shot_path.stat().st_size > 0
    scale = canvas.width / job["result"]["image"]["width"]  # the 1 px border is within the pad below
    box = face["box"]
    x0, y0 = round(box["x"] * scale), round(box["y"] * scale)
    x1, y1 = round((box["x"] + box["width"]) * scale), round((box["y"] + box["height"]) * scale)
    magenta = _face_pixels(canvas)
    pad = 4
    inside = magenta[y0 + pad : y1 - pad, x0 + pad : x1 - pad]
    # the stroke runs along each edge of the box
    assert magenta[y0 - pad : y0 + pad, x0:x1].any(axis=0).mean() > 0.9  # top edge
    assert magenta[y1 - pad : y1 + pad, x0:x1].any(axis=0).mean() > 0.9  # bottom edge
    assert magenta[y0:y1, x0 - pad : x0 + pad].any(axis=1).mean() > 0.9  # left edge
    assert magenta[y0:y1, x1 - pad : x1 + pad].any(axis=1).mean() > 0.9  # right edge
    # inside the box is the photo (the face), not paint: only the landmark dots share the colour
    grey = np.asarray(canvas.convert("L"))[y0 + pad : y1 - pad, x0 + pad : x1 - pad]
    assert inside.mean() < 0.05 and grey.std() > 10
    # nothing else on the canvas is painted that colour but the label above the box
    elsewhere = magenta.copy()
    elsewhere[max(0, y0 - pad - 40) : y1 + pad, x0 - pad : x1 + pad + 100] = False
    assert elsewhere.sum() < 50


def test_console_job_list_shows_the_job_and_filters_it(page, stack: str, tmp_path: Path) -> None:
    # Given a job the console submitted
    job_id = _submit_astronaut(page)
    # When the job list is opened
    page.click("#tabs a[data-view=jobs]")
    row = page.wait_for_selector(f"tr.job[data-id='{job_id}']")
    # Then it shows the job with its live status and task
    assert row.get_attribute("data-status") == "succeeded"
    assert "succeeded" in row.inner_text() and "face" in row.inner_text()
    # and the filters ask the API for matching jobs only (the table says which filter it shows)
    page.select_option("#filter-status", "failed")
    page.wait_for_selector("#jobs[data-filter='failed/any'] tbody td.hint")
    assert page.locator("tr.job").count() == 0
    page.select_option("#filter-status", "succeeded")
    page.select_option("#filter-task", "object")
    page.wait_for_selector("#jobs[data-filter='succeeded/object'] tbody td.hint")
    assert page.locator("tr.job").count() == 0
    page.select_option("#filter-task", "face")
    page.wait_for_selector(f"#jobs[data-filter='succeeded/face'] tr.job[data-id='{job_id}']")
    # and a job submitted meanwhile (by another client) appears and turns succeeded without a reload
    other = httpx.post(f"{stack}/v1/jobs", headers=AUTH, files={"file": ("a.png", image_bytes("astronaut"))},
                       data={"task": "face"}).json()["id"]  # fmt: skip
    page.wait_for_selector(f"tr.job[data-id='{other}'][data-status=succeeded]", timeout=DEFAULT_JOB_TIMEOUT_MS)
    page.screenshot(path=str(tmp_path / "jobs.png"))
    # and after a reload (the key kept, the dropped file gone) a row opens the job: the server's
    # annotated PNG with the detections listed
    page.reload()
    page.wait_for_selector(f"tr.job[data-id='{job_id}']")
    page.click(f"tr.job[data-id='{job_id}'] a")
    page.wait_for_selector("#result:not([hidden]) .detection")
    assert "annotated PNG" in page.inner_text("#caption")


def test_console_workers_view_shows_the_face_worker_and_queue_depth(page, tmp_path: Path) -> None:
    _sign_in(page)
    page.wait_for_selector("#view-submit:not([hidden])")
    page.click("#tabs a[data-view=workers]")
    face = page.wait_for_selector("tr.queue[data-task=face]")
    assert int(face.get_attribute("data-workers")) == 1 and face.get_attribute("data-depth") == "0"
    assert "retinaface" in face.inner_text()
    assert page.locator("tr.queue[data-task=object]").get_attribute("data-workers") == "0"
    assert page.is_hidden("#workers-admin")
    page.screenshot(path=str(tmp_path / "workers.png"))


def test_console_galleries_view_follows_what_the_server_offers(page, stack: str, tmp_path: Path) -> None:
    _sign_in(page)
    page.wait_for_selector("#view-submit:not([hidden])")
    page.click("#tabs a[data-view=galleries]")
    offered = httpx.get(f"{stack}/v1/galleries", headers=AUTH).status_code != 404
    if offered:
        page.wait_for_selector("#galleries-panel:not([hidden])")
        assert page.is_hidden("#galleries-unavailable")
    else:
        notice = page.wait_for_selector("#galleries-unavailable:not([hidden])")
        assert "not available on this server" in notice.inner_text()
        assert page.is_hidden("#galleries-panel")
    page.screenshot(path=str(tmp_path / "galleries.png"))


def test_console_sign_out_forgets_the_key(page) -> None:
    _sign_in(page)
    page.wait_for_selector("#view-submit:not([hidden])")
    page.click("#signout")
    page.wait_for_selector("#signin:not([hidden])")
    assert page.evaluate("sessionStorage.length") == 0
    page.reload()
    page.wait_for_selector("body[data-ready=true]")
    assert page.is_visible("#signin") and page.is_hidden("#console")


def test_console_shows_the_apis_refusal_of_a_file_that_is_no_image(page) -> None:
    _sign_in(page)
    page.wait_for_selector("#view-submit:not([hidden])")
    # When a text file goes through the file picker (the drop zone's keyboard path opens it)
    page.set_input_files("#file", files=[{"name": "notes.txt", "mimeType": "text/plain", "buffer": b"not an image"}])
    # Then the API's refusal is shown, and no job is watched
    error = page.wait_for_selector("#submit-error:not([hidden])")
    assert error.inner_text().startswith("Not submitted: ")
    assert page.is_hidden("#result") and page.evaluate("location.hash") in ("", "#submit")


def test_console_with_a_tenants_key_shows_only_what_the_key_may_see(page, stack: str) -> None:
    # Given a key of another tenant that may read and write jobs, but is no admin
    created = httpx.post(f"{stack}/v1/keys", headers=AUTH, json={
        "tenant": f"t{uuid.uuid4().hex[:8]}", "name": "console", "scopes": ["jobs:read", "jobs:write"]})  # fmt: skip
    assert created.status_code == 201, created.text
    # When it signs in
    _sign_in(page, created.json()["key"])
    page.wait_for_selector("#view-submit:not([hidden])")
    # Then its job list is its tenant's: empty, though the admin's tenant has jobs
    page.click("#tabs a[data-view=jobs]")
    page.wait_for_selector("#jobs[data-filter='any/any'] tbody td.hint")
    assert page.locator("tr.job").count() == 0
    # and the workers view shows no workers or queue depths, only a notice
    page.click("#tabs a[data-view=workers]")
    notice = page.wait_for_selector("#workers-admin:not([hidden])")
    assert "admin key only" in notice.inner_text()
    assert page.locator("tr.queue").count() == 0
