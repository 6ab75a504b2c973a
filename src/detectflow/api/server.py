"""How `detectflow api` runs uvicorn: connection limits, header and keep-alive timeouts, a header size cap."""

from __future__ import annotations

import asyncio
import logging
import resource
from typing import Any

from uvicorn.protocols.http.h11_impl import H11Protocol

from detectflow.config import Settings

__all__ = ["HeaderTimeoutMixin", "header_timeout_protocol", "raise_open_files_limit", "uvicorn_options"]

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


def is_waiting_for_headers(cycle: Any) -> bool:
    """True when a connection has no request in progress: none yet, or the last one answered."""
    return cycle is None or bool(cycle.response_complete)


def header_timeout_protocol(seconds: float) -> type[H11Protocol]:
    """uvicorn's h11 protocol with a header timeout of ``seconds``."""
    return type("HeaderTimeoutH11Protocol", (HeaderTimeoutMixin, H11Protocol), {"header_timeout": seconds})


def uvicorn_options(settings: Settings) -> dict[str, Any]:
    """uvicorn.run options bounding what clients can hold.

    - ``limit_concurrency``: past this many open connections (or running requests), a request is
      answered 503 at once instead of exhausting file descriptors or memory; a long poll holds one.
    - ``http``: h11 (not httptools) because h11 caps the request line and headers
      (``h11_max_incomplete_event_size``; httptools buffers them unbounded), with the header
      timeout above.
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
        "http": header_timeout_protocol(settings.api_header_timeout_seconds),
        "limit_concurrency": settings.api_limit_concurrency,
        "timeout_keep_alive": settings.api_keepalive_seconds,
        "h11_max_incomplete_event_size": settings.api_max_header_bytes,
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
