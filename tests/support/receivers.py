"""Webhook receivers for tests: real HTTP servers on 127.0.0.1 that record what reaches them."""

from __future__ import annotations

import socket
import ssl
import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

__all__ = ["Receiver", "answer_status", "public_first_then_loopback"]

#: How a receiver answers: (receiver, handler, request body) -> None; the handler writes the response.
Answer = Callable[["Receiver", BaseHTTPRequestHandler, bytes], None]


def answer_status(status: int, headers: dict[str, str] | None = None) -> Answer:
    def answer(receiver: Receiver, handler: BaseHTTPRequestHandler, body: bytes) -> None:
        handler.send_response(status)
        for name, value in (headers or {}).items():
            handler.send_header(name, value)
        handler.send_header("Content-Length", "0")
        handler.end_headers()

    return answer


class Receiver:
    """A threaded HTTP(S) server on a free loopback port; ``received`` lists (path, headers, body)."""

    def __init__(self, answer: Answer | None = None, tls: ssl.SSLContext | None = None) -> None:
        self.received: list[tuple[str, dict[str, str], bytes]] = []
        self.done = threading.Event()
        self.sent = 0  # body bytes an answer managed to write
        self.server_names: list[str | None] = []
        receiver = self
        answer = answer or answer_status(204)

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 - http.server API
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                receiver.received.append((self.path, dict(self.headers), body))
                try:
                    answer(receiver, self, body)
                finally:
                    receiver.done.set()

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        if tls is not None:
            tls.sni_callback = lambda sock, name, ctx: self.server_names.append(name)
            self.server.socket = tls.wrap_socket(self.server.socket, server_side=True)
        self.port = self.server.server_address[1]
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def url(self, host: str = "127.0.0.1", path: str = "/hook", scheme: str = "http") -> str:
        return f"{scheme}://{host}:{self.port}{path}"

    def __enter__(self) -> Receiver:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()


def public_first_then_loopback(name: str, public: str = "8.8.8.8") -> tuple[Callable[..., list], list[str]]:
    """A stand-in for ``socket.getaddrinfo``: ``name`` answers ``public`` once, then 127.0.0.1 (DNS rebinding).

    Other names go to the real resolver. Returns the function and the list of answers it gave.
    """
    real = socket.getaddrinfo
    answers: list[str] = []

    def getaddrinfo(host, port, family=0, type=0, proto=0, flags=0):  # noqa: A002 - socket's signature
        if (host.decode() if isinstance(host, bytes) else host) != name:  # anyio passes IDNA bytes
            return real(host, port, family, type, proto, flags)
        answers.append(public if not answers else "127.0.0.1")
        return [(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP, "", (answers[-1], int(port or 0)))]

    return getaddrinfo, answers
