"""How `detectflow api` runs uvicorn: connection limits, header and keep-alive timeouts, a header size cap."""

from __future__ import annotations

import asyncio
import logging
import resource
from typing import Any

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from detectflow.config import Settings

__all__ = [
    "HeaderCapMixin", "HeaderTimeoutMixin", "api_protocol", "raise_open_files_limit", "uvicorn_options",
]

log = logging.getLogger(__name__)

#: File descriptors kept beyond the connection limit (Redis pools, logs, the listening socket).
SPARE_FILES = 256


class HeaderTimeoutMixin:
    """Closes a connection whose next request's line and headers have not all arrived in time.

    uvicorn (0.54) has a keep-alive timeout but none for headers: any byte received disarms the
    keep-alive timer, so a client trickling a header byte every few seconds holds its connection
    (and a slot of ``limit_concurrency``) forever. This timer is armed when the connection opens
    and after each response; when it fires while no request is in progress (no cycle, or the last
    one answered) the connection is closed. A request whose headers arrived in time is never cut:
    its body has its own deadline (:class:`~detectflow.api.middleware.RequestContextMiddleware`).
    It uses only ``connection_made``, ``connection_lost``, ``on_response_complete``, ``cycle``,
    ``transport`` and ``loop`` of uvicorn's protocol.
    """

    header_timeout: float = 10.0
    _header_timer: asyncio.TimerHandle | None = None

    def connection_made(self, transport) -> None:
        super().connection_made(transport)  # type: ignore[misc]
        self._arm_header_timer()

    def connection_lost(self, exc) -> None:
        self._disarm_header_timer()
        super().connection_lost(exc)  # type: ignore[misc]

    def on_response_complete(self) -> None:
        super().on_response_complete()  # type: ignore[misc]
        if not self.transport.is_closing():  # type: ignore[attr-defined]
            self._arm_header_timer()

    def _arm_header_timer(self) -> None:
        self._disarm_header_timer()
        self._header_timer = self.loop.call_later(self.header_timeout, self._header_timer_expired)  # type: ignore[attr-defined]

    def _disarm_header_timer(self) -> None:
        if self._header_timer is not None:
            self._header_timer.cancel()
            self._header_timer = None

    def _header_timer_expired(self) -> None:
        self._header_timer = None
        cycle = self.cycle  # type: ignore[attr-defined]
        if is_waiting_for_headers(cycle) and not self.transport.is_closing():  # type: ignore[attr-defined]
            self.transport.close()  # type: ignore[attr-defined]


class HeaderCapMixin:
    """Refuses (400, then closes) a request whose line and headers exceed ``max_header_bytes``.

    httptools, uvicorn's fast parser, buffers an incomplete request line and headers without bound
    (h11 has ``max_incomplete_event_size``; httptools has no such limit). Two checks:

    - while a request's headers are incomplete, the bytes received are counted and checked after each
      chunk is parsed (a chunk that completes the headers resets the count, so a body never counts; a
      pipelined request starting inside the chunk that ends the previous one is counted from the next
      chunk): at most ``max_header_bytes`` plus one read (uvloop reads at most 256 KiB) is buffered;
    - once they are complete, the URL and headers themselves are measured (name, value, ``: `` and
      CRLF each), so a whole oversized block in one read is refused as well.

    It uses only ``data_received``, ``on_headers_complete``, ``on_message_complete``, ``url``,
    ``headers``, ``send_400_response`` and ``transport`` of uvicorn's protocol; a callback's exception
    makes uvicorn answer 400 itself.
    """

    max_header_bytes: int = 16 * 1024
    _head_bytes: int = 0
    _in_head: bool = True  # the current request's line and headers are not all parsed yet

    def data_received(self, data: bytes) -> None:
        if self._in_head:
            self._head_bytes += len(data)
        super().data_received(data)  # type: ignore[misc]
        if self._in_head and self._head_bytes > self.max_header_bytes and not self.transport.is_closing():  # type: ignore[attr-defined]
            log.debug("request line and headers above %d bytes: refused", self.max_header_bytes)
            self.send_400_response("Request line and headers too large.")  # type: ignore[attr-defined]

    def on_headers_complete(self) -> None:
        self._in_head, self._head_bytes = False, 0
        size = len(self.url) + sum(len(k) + len(v) + 4 for k, v in self.headers)  # type: ignore[attr-defined]
        if size > self.max_header_bytes:
            raise ValueError(f"request line and headers of {size} bytes (at most {self.max_header_bytes})")
        super().on_headers_complete()  # type: ignore[misc]

    def on_message_complete(self) -> None:
        super().on_message_complete()  # type: ignore[misc]
        self._in_head = True


def is_waiting_for_headers(cycle: Any) -> bool:
    """True when a connection has no request in progress: none yet, or the last one answered."""
    return cycle is None or bool(cycle.response_complete)


def api_protocol(header_timeout: float, max_header_bytes: int) -> type[HttpToolsProtocol]:
    """uvicorn's httptools protocol with a header timeout (seconds) and a header size cap (bytes)."""
    return type(
        "DetectflowHttpProtocol", (HeaderTimeoutMixin, HeaderCapMixin, HttpToolsProtocol),
        {"header_timeout": header_timeout, "max_header_bytes": max_header_bytes},
    )  # fmt: skip



def uvicorn_options(settings: Settings) -> dict[str, Any]:
    """uvicorn.run options bounding what clients can hold.

    - ``limit_concurrency``: past this many open connections (or running requests), a request is
      answered 503 at once instead of exhausting file descriptors or memory; a long poll holds one.
    - ``http``: httptools (uvicorn's C parser: about 0.1-0.3 ms less CPU per request than h11, measured)
      with the header timeout and the header size cap above (httptools has no cap of its own).
    - ``timeout_keep_alive``: an idle keep-alive connection is closed after this.

    Parameters
    ----------
    settings
        The API settings (``api_limit_concurrency``, ``api_header_timeout_seconds``,
        ``api_max_header_bytes``, ``api_keepalive_seconds``).

    Returns
    -------
    dict
        Keyword arguments for ``uvicorn.run`` / ``uvicorn.Config``.
    """
    return {
        "http": api_protocol(settings.api_header_timeout_seconds, settings.api_max_header_bytes),
        "limit_concurrency": settings.api_limit_concurrency,
        "timeout_keep_alive": settings.api_keepalive_seconds,
        **proxy_options(settings.api_forwarded_allow_ips),
    }


def proxy_options(forwarded_allow_ips: str) -> dict[str, Any]:
    """uvicorn's proxy-header options: trust X-Forwarded-* only from the listed proxies.

    uvicorn's own default trusts 127.0.0.1 (or ``$FORWARDED_ALLOW_IPS``); detectflow trusts no proxy
    unless told, so a client cannot fake its scheme or address.

    Parameters
    ----------
    forwarded_allow_ips
        Comma-separated IPs or networks (``api_forwarded_allow_ips``); empty: none.

    Returns
    -------
    dict
        ``proxy_headers`` off, or on with ``forwarded_allow_ips``.
    """
    trusted = [part.strip() for part in forwarded_allow_ips.split(",") if part.strip()]
    if not trusted:
        return {"proxy_headers": False}
    return {"proxy_headers": True, "forwarded_allow_ips": trusted}


def raise_open_files_limit(connections: int) -> int:
    """Raise this process's soft open-files limit towards ``connections`` + spares (never above the hard limit).

    Returns the soft limit in force; logs a warning when it stays below what ``connections`` needs.
    """
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    wanted = connections + SPARE_FILES
    if soft != resource.RLIM_INFINITY and soft < wanted:
        target = wanted if hard == resource.RLIM_INFINITY else min(wanted, hard)
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
        soft = target
    if soft != resource.RLIM_INFINITY and soft < wanted:
        log.warning("open-files limit %d is below api_limit_concurrency + %d; connections may fail", soft, SPARE_FILES)
    return soft
