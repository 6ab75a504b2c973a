"""Unit tests of the console's serving: its security headers, its files and what ships in the wheel."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

from fastapi import FastAPI
from fastapi.testclient import TestClient

from detectflow.api.console import UI_DIR, console_headers, install_console
from detectflow.api.metrics import Metrics
from detectflow.api.middleware import RequestContextMiddleware

ROOT = Path(__file__).resolve().parents[3]


def _csp() -> dict[str, str]:
    return dict(part.strip().split(" ", 1) for part in console_headers()["Content-Security-Policy"].split(";"))


def test_console_headers_allow_only_own_scripts_and_no_framing() -> None:
    csp = _csp()
    assert csp["default-src"] == "'none'"
    assert csp["script-src"] == "'self'" and csp["style-src"] == "'self'"  # no 'unsafe-inline', no other origin
    assert csp["connect-src"] == "'self'" and csp["frame-ancestors"] == "'none'"
    assert csp["img-src"] == csp["media-src"] == "'self' blob:"  # the dropped file and fetched outputs
    assert console_headers()["X-Frame-Options"] == "DENY"
    assert not any("unsafe" in value for value in csp.values())


def test_install_console_serves_the_files_with_the_headers() -> None:
    # Given an app with only the console
    app = FastAPI()
    install_console(app)
    with TestClient(app) as client:
        # When the page, a module and a missing file are fetched
        page = client.get("/ui", follow_redirects=True)
        module = client.get("/ui/js/draw.js")
        missing = client.get("/ui/nope.js")
    # Then each answer carries the headers
    assert page.status_code == 200 and "<title>detectflow console</title>" in page.text
    assert module.status_code == 200 and missing.status_code == 404
    for answer in (page, module, missing):
        for name, value in console_headers().items():
            assert answer.headers[name] == value


def test_console_requests_are_counted_under_one_route_label() -> None:
    # Given the console behind the API's request middleware
    app = FastAPI()
    install_console(app)
    metrics = Metrics()
    app.add_middleware(RequestContextMiddleware, metrics=metrics, max_body_bytes=1024)
    with TestClient(app) as client:
        client.get("/ui/")
        client.get("/ui/js/api.js")
    # Then both are labelled /ui, not "unmatched" and not one label per file
    seen = {s.labels["route"] for m in metrics.requests.collect() for s in m.samples if s.name.endswith("_total")}
    assert seen == {"/ui"}


def test_console_page_and_modules_reference_only_shipped_files() -> None:
    index = (UI_DIR / "index.html").read_text()
    refs = re.findall(r'(?:src|href)="([^"#][^"]*)"', index)
    assert {"console.css", "js/main.js"} <= set(refs)
    for ref in refs:
        assert (UI_DIR / ref).is_file(), ref
    for module in (UI_DIR / "js").glob("*.js"):
        for imported in re.findall(r'from "(\./[^"]+)"', module.read_text()):
            assert (module.parent / imported).is_file(), f"{module.name} imports {imported}"
        assert "innerHTML" not in module.read_text(), f"{module.name}: build nodes with textContent"


def test_console_files_are_package_data() -> None:
    # every file of the console matches a package-data pattern, so the wheel ships it
    patterns = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["package-data"]["detectflow"]
    package = ROOT / "src" / "detectflow"
    shipped = {p for pattern in patterns for p in package.glob(pattern)}
    files = {p for p in UI_DIR.rglob("*") if p.is_file()}
    assert files and files <= shipped, sorted(str(p.relative_to(package)) for p in files - shipped)
