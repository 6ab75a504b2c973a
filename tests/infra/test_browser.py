"""The browser of the test suite: Debian's Chromium, driven by Playwright, against a real `detectflow api`."""

from __future__ import annotations

import io
import json
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from PIL import Image

from detectflow.cli.up import RedisServer
from tests.support.browser import CHROMIUM_ARGS, chromium_path, loopback_page
from tests.support.processes import cli_env, start_api

pytestmark = [pytest.mark.browser, pytest.mark.redis]


@pytest.fixture(scope="module")
def api_url(redis_server: RedisServer, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A real `detectflow api` process on 127.0.0.1 with a key prefix of this module's own."""
    logs = tmp_path_factory.mktemp("api")
    env = cli_env(redis_url=redis_server.url, redis_prefix=f"test{uuid.uuid4().hex[:10]}", state_dir=logs / "state")
    proc, url = start_api(env, logs / "api.log")
    try:
        yield url
    finally:
        proc.stop()


def _inked_fraction(png: bytes) -> float:
    """Share of the screenshot's pixels darker than the white page background."""
    grey = Image.open(io.BytesIO(png)).convert("L")
    return sum(grey.histogram()[:200]) / (grey.width * grey.height)


def test_browser_is_debians_chromium_with_the_pinned_flags(browser) -> None:
    assert chromium_path() == Path("/usr/bin/chromium")
    assert browser.version.split(".")[0].isdigit()
    assert {"--headless", "--no-sandbox", "--disable-quic", "--disable-background-networking"} <= set(CHROMIUM_ARGS)


def test_browser_renders_the_api_openapi_document(browser, api_url: str, tmp_path: Path) -> None:
    page, blocked = loopback_page(browser)
    try:
        response = page.goto(f"{api_url}/openapi.json", wait_until="load")
        assert response is not None and response.status == 200
        # Chromium shows JSON as text: the DOM holds the whole document
        spec = json.loads(page.evaluate("document.body.innerText"))
        assert spec["info"]["title"] and "/v1/jobs" in spec["paths"]
        shot = page.screenshot(path=str(tmp_path / "openapi.png"), full_page=False)
    finally:
        page.context.close()
    assert Image.open(io.BytesIO(shot)).size == (1280, 800)
    assert 0.01 < _inked_fraction(shot) < 0.9  # text drawn on a light page, not a blank (or black) frame
    assert blocked == []


def test_browser_loads_swagger_shell_and_never_leaves_loopback(browser, api_url: str) -> None:
    page, blocked = loopback_page(browser)
    try:
        page.goto(f"{api_url}/docs", wait_until="load")
        assert "Swagger UI" in page.title()
        assert page.locator("#swagger-ui").count() == 1
        # FastAPI's /docs takes its scripts from a CDN; the page's requests off 127.0.0.1 were aborted
        assert blocked and all("127.0.0.1" not in url for url in blocked)
    finally:
        page.context.close()
