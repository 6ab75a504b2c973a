"""A TCP proxy on loopback that can lose the server's answers: a real lost response between a client and a server."""

from __future__ import annotations

import socket
import threading

__all__ = ["LossyProxy"]


class LossyProxy:
    """Forwards connections to ``upstream``; the first ``drop_answers`` connections get their request through, the
    server's answer read and thrown away, and then the connection closed: the server acted, the client never hears.

    Written here rather than taken from a library: it is the one fault the client tests need (toxiproxy's
    "reset after the answer" needs a Go server for ~60 lines of sockets).
    """

    def __init__(self, upstream_port: int, drop_answers: int = 0) -> None:
        self.upstream = ("127.0.0.1", upstream_port)
        self.drop_answers = drop_answers
        self.connections = 0
        self.dropped = 0
        self._lock = threading.Lock()
        self._sock = socket.create_server(("127.0.0.1", 0))
        self.port = self._sock.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}"
        self._closed = False
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while not self._closed:
            try:
                client, _ = self._sock.accept()
            except OSError:
                return
            with self._lock:
                self.connections += 1
                drop = self.dropped < self.drop_answers
                if drop:
                    self.dropped += 1
            threading.Thread(target=self._serve, args=(client, drop), daemon=True).start()

    def _serve(self, client: socket.socket, drop: bool) -> None:
        try:
            upstream = socket.create_connection(self.upstream, timeout=30)
        except OSError:
            client.close()
            return
        threading.Thread(target=_pump, args=(client, upstream), daemon=True).start()
        if drop:
            try:
                upstream.recv(65536)  # the server has answered, so it has acted on the request
            except OSError:
                pass
            for s in (client, upstream):
                _close(s)
            return
        _pump(upstream, client)

    def close(self) -> None:
        self._closed = True
        self._sock.close()

    def __enter__(self) -> LossyProxy:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _pump(src: socket.socket, dst: socket.socket) -> None:
    try:
        while data := src.recv(65536):
            dst.sendall(data)
    except OSError:
        pass
    finally:
        for s in (src, dst):
            _close(s)


def _close(s: socket.socket) -> None:
    try:
        s.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass
    s.close()
