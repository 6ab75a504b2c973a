"""The web console: the static files under api/ui served at /ui with a strict Content-Security-Policy."""

from __future__ import annotations

from pathlib import Path

from fastapi import FastAPI
from starlette.exceptions import HTTPException
from starlette.responses import PlainTextResponse
from starlette.staticfiles import StaticFiles

__all__ = ["UI_DIR", "CONSOLE_PATH", "console_headers", "install_console"]

#: Where the console's files live inside the package (shipped in the wheel as package data).
UI_DIR = Path(__file__).resolve().parent / "ui"
#: The URL path the console is served at.
CONSOLE_PATH = "/ui"

#: Only the console's own files run; data calls go to this origin only; the page may not be framed.
_CSP = (
    "default-src 'none'",
    "script-src 'self'",
    "style-src 'self'",
    "img-src 'self' blob:",
    "media-src 'self' blob:",
    "connect-src 'self'",
    "base-uri 'none'",
    "form-action 'none'",
    "frame-ancestors 'none'",
)


def console_headers() -> dict[str, str]:
    """The security headers of every console answer.

    Returns
    -------
    dict of str to str
        ``Content-Security-Policy`` (no inline scripts or styles, nothing from another origin,
        ``frame-ancestors 'none'``), ``X-Frame-Options: DENY``, ``X-Content-Type-Options: nosniff``,
        ``Referrer-Policy: no-referrer`` and ``Cache-Control: no-cache`` (revalidate, so an upgrade
        is seen at once).
    """
    return {
        "Content-Security-Policy": "; ".join(_CSP),
        "X-Frame-Options": "DENY",
        "X-Content-Type-Options": "nosniff",
        "Referrer-Policy": "no-referrer",
        "Cache-Control": "no-cache",
    }


class _SecuredStatic:
    """Starlette's StaticFiles with :func:`console_headers` added to every answer (404s included)."""

    #: The route the request metrics label console requests with (one label, not one per file).
    path = CONSOLE_PATH

    def __init__(self, directory: Path) -> None:
        self.files = StaticFiles(directory=directory, html=True)
        self.headers = [(k.lower().encode(), v.encode()) for k, v in console_headers().items()]

    async def __call__(self, scope, receive, send):
        scope["route"] = self  # the scope the middleware sees: the router updates it in place
        async def send_secured(message):
            if message["type"] == "http.response.start":
                message["headers"] = list(message.get("headers", [])) + self.headers
            await send(message)

        try:
            await self.files(scope, receive, send_secured)
        except HTTPException as exc:  # a missing file: answered here, so it carries the headers too
            answer = PlainTextResponse(str(exc.detail), status_code=exc.status_code, headers=exc.headers)
            await answer(scope, receive, send_secured)


def install_console(app: FastAPI, directory: Path = UI_DIR) -> None:
    """Serve the console's static files at ``/ui`` (``/ui`` redirects to ``/ui/``).

    The files are public, like /docs: they hold no data. Every call the console makes sends the
    API key the user signed in with, so the console grants nothing the key does not.

    Parameters
    ----------
    app
        The API application.
    directory
        The folder holding ``index.html`` and the console's scripts and styles.
    """
    app.mount(CONSOLE_PATH, _SecuredStatic(directory), name="console")
