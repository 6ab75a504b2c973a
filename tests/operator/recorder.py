"""A recording reverse proxy: the operator talks plain HTTP to it, it forwards to the apiserver
over TLS with the operator's ServiceAccount token and records every request's verb and resource.

This makes RBAC testable both ways: a missing rule shows as a 403 in the record, an excess rule
as a rule no recorded request needed.
"""

from __future__ import annotations

import http.client
import ssl
import threading
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

_HOP = {"connection", "keep-alive", "transfer-encoding", "te", "trailer", "upgrade", "proxy-connection"}


@dataclass(frozen=True)
class Call:
    method: str
    path: str
    query: str
    status: int

    @property
    def verb(self) -> str:
        """The RBAC verb the apiserver authorizes for this request."""
        if self.method == "GET":
            if "watch" in parse_qs(self.query) and parse_qs(self.query)["watch"][0] in ("true", "1"):
                return "watch"
            return "get" if self._has_name else "list"
        return {"POST": "create", "PUT": "update", "PATCH": "patch", "DELETE": "delete"}[self.method]

    def _segments(self) -> list[str]:
        return [s for s in self.path.split("/") if s]

    @property
    def _has_name(self) -> bool:
        return self.resource[2] is not None

    @property
    def resource(self) -> tuple[str, str, str | None]:
        """(apiGroup, resource[/subresource], name) of a resource request; ('', '', None) otherwise."""
        seg = self._segments()
        if seg[:2] == ["api", "v1"]:
            group, rest = "", seg[2:]
        elif seg[:1] == ["apis"] and len(seg) >= 3:
            group, rest = seg[1], seg[3:]
        else:
            return "", "", None
        if rest[:1] == ["namespaces"] and len(rest) >= 3:
            rest = rest[2:]
        if not rest:
            return group, "", None
        name = rest[1] if len(rest) >= 2 else None
        sub = f"/{rest[2]}" if len(rest) >= 3 else ""
        return group, rest[0] + sub, name


class Recorder:
    """Start with ``Recorder(upstream_host, upstream_port, ca_file, token)``; ``url`` to point at."""

    def __init__(self, upstream: str, ca_file: str, token: str) -> None:
        parts = urlsplit(upstream)
        self.calls: list[Call] = []
        self._lock = threading.Lock()
        context = ssl.create_default_context(cafile=ca_file)
        recorder = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: object) -> None:
                pass

            def _forward(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else None
                headers = {k: v for k, v in self.headers.items() if k.lower() not in _HOP | {"host", "authorization"}}
                headers["Authorization"] = f"Bearer {token}"
                conn = http.client.HTTPSConnection(parts.hostname, parts.port, context=context, timeout=600)
                try:
                    conn.request(self.command, self.path, body=body, headers=headers)
                    resp = conn.getresponse()
                    split = urlsplit(self.path)
                    with recorder._lock:
                        recorder.calls.append(Call(self.command, split.path, split.query, resp.status))
                    self.send_response(resp.status)
                    for key, value in resp.getheaders():
                        if key.lower() not in _HOP and key.lower() != "content-length":
                            self.send_header(key, value)
                    self.send_header("Transfer-Encoding", "chunked")
                    self.end_headers()
                    while True:
                        chunk = resp.read1(65536)
                        if not chunk:
                            break
                        self.wfile.write(b"%x\r\n%s\r\n" % (len(chunk), chunk))
                        self.wfile.flush()
                    self.wfile.write(b"0\r\n\r\n")
                    self.wfile.flush()
                except (BrokenPipeError, ConnectionResetError, TimeoutError):
                    self.close_connection = True
                finally:
                    conn.close()

            do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = _forward

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()

    def used(self) -> set[tuple[str, str, str]]:
        """(apiGroup, resource, verb) of every authorized resource request so far.

        A server-side apply that created its object (201) was authorized as patch and create.
        """
        out = set()
        with self._lock:
            for c in self.calls:
                if c.resource[1] and c.status != 403:
                    out.add((c.resource[0], c.resource[1], c.verb))
                    if c.method == "PATCH" and c.status == 201:
                        out.add((c.resource[0], c.resource[1], "create"))
        return out

    def forbidden(self) -> list[Call]:
        with self._lock:
            return [c for c in self.calls if c.status == 403]

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()
