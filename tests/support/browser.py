"""Headless Chromium for tests: Debian's /usr/bin/chromium (scripts/install-browser.sh) driven by Playwright.

    with launch_chromium() as browser:      # a playwright Browser; never `playwright install`
        page = browser.new_page()
        page.goto(url)

Playwright gives every launch a fresh temporary ``--user-data-dir`` (it refuses the flag in ``args``) and
deletes it on close.
"""

from __future__ import annotations

import contextlib
import os
import urllib.parse
from collections.abc import Iterator
from pathlib import Path

__all__ = ["CHROMIUM_ARGS", "chromium_path", "launch_chromium", "loopback_page"]

DEFAULT_CHROMIUM = Path("/usr/bin/chromium")
DEFAULT_LAUNCH_TIMEOUT_MS = 60_000  # milliseconds, Playwright's unit
#: Flags for a quiet, offline, reproducible browser: no GPU, no QUIC, no first-run or background traffic.
CHROMIUM_ARGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
)


def chromium_path() -> Path:
    """The Chromium binary: ``DETECTFLOW_CHROMIUM`` if set, else Debian's /usr/bin/chromium."""
    path = Path(os.environ.get("DETECTFLOW_CHROMIUM", DEFAULT_CHROMIUM))
    if not os.access(path, os.X_OK):
        raise FileNotFoundError(f"{path} not found: run scripts/install-browser.sh (Debian packages chromium, chromium-driver)")
    return path


@contextlib.contextmanager
def launch_chromium() -> Iterator[object]:
    """A Playwright ``Browser`` on :func:`chromium_path`; closed (and its profile removed) on exit."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        browser = pw.chromium.launch(
            executable_path=str(chromium_path()), headless=True, args=list(CHROMIUM_ARGS),
            timeout=DEFAULT_LAUNCH_TIMEOUT_MS,
        )  # fmt: skip
        try:
            yield browser
        finally:
            browser.close()



def loopback_page(browser) -> tuple[object, list[str]]:
    """A new page in a fresh context whose requests to anything but 127.0.0.1 are aborted.

    Returns
    -------
    (page, blocked)
        The Playwright ``Page`` and the list the URLs of aborted requests are appended to.
    """
    context = browser.new_context(viewport={"width": 1280, "height": 800})
    blocked: list[str] = []

    def route(r) -> None:
        host = urllib.parse.urlsplit(r.request.url).hostname
        if host == "127.0.0.1" or r.request.url.startswith(("data:", "blob:", "about:")):
            r.continue_()
        else:
            blocked.append(r.request.url)
            r.abort()

    context.route("**/*", route)
    return context.new_page(), blocked
