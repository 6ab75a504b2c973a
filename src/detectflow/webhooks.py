"""Signed webhook delivery of finished jobs."""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import socket
import time
from urllib.parse import urlsplit

__all__ = ["sign", "verify", "is_private_target", "SIGNATURE_HEADER", "TIMESTAMP_HEADER"]

SIGNATURE_HEADER = "X-Detectflow-Signature"
TIMESTAMP_HEADER = "X-Detectflow-Timestamp"


def sign(secret: str, body: bytes, timestamp: int | None = None) -> dict[str, str]:
    """Headers for ``body``: ``t=<unix>,v1=<hex HMAC-SHA256 of "<t>." + body>``."""
    ts = int(time.time()) if timestamp is None else timestamp
    mac = hmac.new(secret.encode(), f"{ts}.".encode() + body, hashlib.sha256).hexdigest()
    return {SIGNATURE_HEADER: f"t={ts},v1={mac}", TIMESTAMP_HEADER: str(ts)}


def verify(secret: str, body: bytes, signature: str, tolerance_s: int = 300, now: float | None = None) -> bool:
    """Check a signature header as a receiver would (constant-time, with a replay window)."""
    try:
        parts = dict(p.split("=", 1) for p in signature.split(","))
        ts = int(parts["t"])
    except (ValueError, KeyError):
        return False
    if abs((time.time() if now is None else now) - ts) > tolerance_s:
        return False
    expected = sign(secret, body, ts)[SIGNATURE_HEADER].split("v1=", 1)[1]
    return hmac.compare_digest(expected, parts.get("v1", ""))


def is_private_target(url: str) -> bool:
    """Whether ``url``'s host resolves to a loopback, private, link-local or reserved address.

    Unresolvable hosts count as private: a webhook that cannot be checked is not sent.
    """
    host = urlsplit(url).hostname or ""
    try:
        infos = socket.getaddrinfo(host, None, proto=socket.IPPROTO_TCP)
    except (socket.gaierror, UnicodeError):
        return True
    for *_, sockaddr in infos:
        ip = ipaddress.ip_address(sockaddr[0])
        if not ip.is_global or ip.is_multicast:
            return True
    return False
