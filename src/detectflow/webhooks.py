"""Signed webhook delivery of finished jobs: signing, target vetting, and a delivery pinned to the vetted address."""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import logging
import socket
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

import anyio
import httpx

__all__ = [
    "sign",
    "verify",
    "signing_key",
    "address_refusal",
    "host_is_allowed",
    "TargetPolicy",
    "Target",
    "TargetRefused",
    "parse_target",
    "vet_addresses",
    "vet_target",
    "vet_target_async",
    "resolve",
    "resolve_async",
    "deliver",
    "DeliveryOutcome",
    "SIGNATURE_HEADER",
    "TIMESTAMP_HEADER",
    "DEFAULT_MAX_RESPONSE_BYTES",
    "METADATA_ADDRESSES",
    "LOOPBACK_CIDRS",
    "INVALID_URL",
    "REFUSED_PRIVATE_ADDRESS",
]

log = logging.getLogger("detectflow.webhooks")

SIGNATURE_HEADER = "X-Detectflow-Signature"
TIMESTAMP_HEADER = "X-Detectflow-Timestamp"

#: Most bytes of a receiver's answer read (the status line decides; the body is dropped), bytes.
DEFAULT_MAX_RESPONSE_BYTES = 64 * 1024

#: Cloud metadata and host-agent services; refused by name, since a few sit on public addresses (Azure).
METADATA_ADDRESSES = frozenset(
    ipaddress.ip_address(a)
    for a in (
        "169.254.169.254",  # AWS, GCP, Azure, OpenStack, Oracle, DigitalOcean IMDS
        "169.254.170.2",  # AWS ECS task metadata
        "169.254.169.253",  # AWS DNS resolver
        "fd00:ec2::254",  # AWS IMDS over IPv6
        "fd00:ec2::253",  # AWS DNS over IPv6
        "100.100.100.200",  # Alibaba Cloud
        "168.63.129.16",  # Azure WireServer (a public address)
    )
)

#: The loopback networks `detectflow up` opens when it serves on loopback.
LOOPBACK_CIDRS = ("127.0.0.0/8", "::1/128")

#: IPv6 prefix of NAT64 (RFC 6052): its last 32 bits are the IPv4 address a gateway reaches.
_NAT64 = ipaddress.ip_network("64:ff9b::/96")

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network
#: Resolves (host, port) to IP address strings, in the order to try them.
Resolver = Callable[[str, int], Sequence[str]]

# Stable reasons a webhook is not delivered (what a job's ``webhook.last_error`` shows).
REFUSED_PRIVATE_ADDRESS = "refused_private_address"
INVALID_URL = "invalid_url"
DNS_FAILED = "dns_failed"
CONNECT_FAILED = "connect_failed"
TIMEOUT = "timeout"
PROTOCOL_ERROR = "protocol_error"
CONNECTION_LOST = "connection_lost"
DELIVERY_FAILED = "delivery_failed"


def sign(secret: str, body: bytes, timestamp: int | None = None) -> dict[str, str]:
    """Headers for ``body``: ``t=<unix>,v1=<hex HMAC-SHA256 of "<t>." + body>``.

    Raises
    ------
    ValueError
        When ``secret`` is empty: an HMAC with an empty key proves nothing.
    """
    if not secret:
        raise ValueError("refusing to sign a webhook with an empty secret")
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
    if not secret or abs((time.time() if now is None else now) - ts) > tolerance_s:
        return False
    expected = sign(secret, body, ts)[SIGNATURE_HEADER].split("v1=", 1)[1]
    return hmac.compare_digest(expected, parts.get("v1", ""))


def signing_key(secret: object) -> str | None:
    """The webhook key from a ``SecretStr`` setting, or None when unset or blank (webhooks are then refused)."""
    value = secret.get_secret_value() if hasattr(secret, "get_secret_value") else secret
    return value if isinstance(value, str) and value.strip() else None


def _embedded_ipv4(ip: IPAddress) -> IPAddress:
    """The IPv4 address an IPv6 address stands for (mapped, 6to4, NAT64), else ``ip`` itself."""
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.ipv4_mapped is not None:
            return ip.ipv4_mapped
        if ip.sixtofour is not None:
            return ip.sixtofour
        if ip in _NAT64:
            return ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)
    return ip


def address_refusal(ip: IPAddress, allow_cidrs: Iterable[IPNetwork] = ()) -> str | None:
    """Why ``ip`` may not be a webhook target, or None when it may.

    Parameters
    ----------
    ip
        A resolved address. IPv6 forms of an IPv4 address (``::ffff:a.b.c.d``, 6to4, NAT64) are judged as
        that IPv4 address.
    allow_cidrs
        Networks opened explicitly; they never open multicast or the unspecified address.

    Returns
    -------
    str | None
        ``unspecified``, ``multicast``, ``metadata``, ``loopback``, ``link_local``, ``private`` or
        ``reserved`` (any other non-global range: shared, documentation, benchmarking, ...); None for a
        global unicast address or one inside ``allow_cidrs``.
    """
    ip = ipaddress.ip_address(ip.compressed.split("%", 1)[0])  # a zone id changes nothing
    inner = _embedded_ipv4(ip)
    for candidate in {ip, inner}:
        if candidate.is_unspecified:
            return "unspecified"
        if candidate.is_multicast:
            return "multicast"
    if any(c.version == net.version and c in net for net in allow_cidrs for c in (ip, inner)):
        return None
    for candidate in dict.fromkeys((inner, ip)):  # the IPv4 address an IPv6 form stands for decides first
        if candidate in METADATA_ADDRESSES:
            return "metadata"
        if candidate.is_loopback:
            return "loopback"
        if candidate.is_link_local:
            return "link_local"
        if candidate.is_private:
            return "private"
        if not candidate.is_global:
            return "reserved"
    return None


def host_is_allowed(host: str, allow_hosts: Iterable[str]) -> bool:
    """Whether ``host`` is on the allowlist: exact names (case-insensitive), or ``*.suffix`` for subdomains."""
    name = host.lower().rstrip(".")
    for entry in allow_hosts:
        entry = entry.lower().rstrip(".")
        if entry.startswith("*.") and name.endswith(entry[1:]) and len(name) > len(entry) - 1:
            return True
        if name == entry:
            return True
    return False


@dataclass(frozen=True, slots=True)
class TargetPolicy:
    """Which webhook targets are opened although they resolve to a non-public address."""

    allow_hosts: tuple[str, ...] = ()
    allow_cidrs: tuple[IPNetwork, ...] = ()

    @classmethod
    def of(cls, allow_hosts: Iterable[str] = (), allow_cidrs: Iterable[str] = ()) -> TargetPolicy:
        """A policy from the settings' lists (CIDR strings are parsed, host bits allowed)."""
        return cls(tuple(allow_hosts), tuple(ipaddress.ip_network(c, strict=False) for c in allow_cidrs))


@dataclass(frozen=True, slots=True)
class Target:
    """A vetted webhook target: the URL as given, its host and port, and the addresses to connect to."""

    url: httpx.URL
    host: str  # ASCII (IDNA) form, no brackets
    port: int
    addresses: tuple[str, ...]


class TargetRefused(Exception):
    """A webhook target that is not contacted; ``reason`` is stable, ``detail`` is for logs only."""

    def __init__(self, reason: str, detail: str = "") -> None:
        super().__init__(reason)
        self.reason = reason
        self.detail = detail


def parse_target(url: str) -> tuple[httpx.URL, str, int]:
    """The parsed URL, its ASCII host and its port.

    Raises
    ------
    TargetRefused
        ``invalid_url`` unless ``url`` is an absolute http(s) URL with a host.
    """
    try:
        parsed = httpx.URL(url)
    except (httpx.InvalidURL, TypeError, ValueError):
        raise TargetRefused(INVALID_URL, "unparseable URL") from None
    if parsed.scheme not in ("http", "https") or not parsed.raw_host:
        raise TargetRefused(INVALID_URL, "not an absolute http(s) URL")
    if parsed.userinfo:
        raise TargetRefused(INVALID_URL, "credentials in the URL")
    port = parsed.port or (443 if parsed.scheme == "https" else 80)
    return parsed, parsed.raw_host.decode("ascii"), port


def vet_addresses(host: str, addresses: Sequence[str], policy: TargetPolicy) -> tuple[str, ...]:
    """The addresses ``host`` resolved to, when every one of them may be contacted.

    One refused answer refuses them all: a resolver that mixes a public and a private answer is not
    trusted with either.

    Raises
    ------
    TargetRefused
        ``dns_failed`` for no answer, ``refused_private_address`` for a refused one.
    """
    if not addresses:
        raise TargetRefused(DNS_FAILED, f"{host} has no address")
    opened = host_is_allowed(host, policy.allow_hosts)
    vetted = []
    for text in addresses:
        try:
            ip = ipaddress.ip_address(text.split("%", 1)[0])
        except ValueError:
            raise TargetRefused(REFUSED_PRIVATE_ADDRESS, f"{host} answered a non-address {text!r}") from None
        why = address_refusal(ip, policy.allow_cidrs)
        if why in ("unspecified", "multicast") or (why and not opened):
            raise TargetRefused(REFUSED_PRIVATE_ADDRESS, f"{host} resolves to {why} address {ip}")
        vetted.append(text)
    return tuple(dict.fromkeys(vetted))


def _literal(host: str) -> str | None:
    try:
        return str(ipaddress.ip_address(host))
    except ValueError:
        return None


def resolve(host: str, port: int) -> list[str]:
    """Addresses of ``host`` in the system resolver's order (blocking: call it off any event loop).

    Raises
    ------
    TargetRefused
        ``dns_failed`` when the name does not resolve.
    """
    if (ip := _literal(host)) is not None:
        return [ip]
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (OSError, UnicodeError) as exc:
        raise TargetRefused(DNS_FAILED, f"{host}: {exc}") from None
    return list(dict.fromkeys(info[4][0] for info in infos))


async def resolve_async(host: str, port: int) -> list[str]:
    """As :func:`resolve`, without blocking the event loop (anyio runs getaddrinfo in a thread)."""
    if (ip := _literal(host)) is not None:
        return [ip]
    try:
        infos = await anyio.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (OSError, UnicodeError) as exc:
        raise TargetRefused(DNS_FAILED, f"{host}: {exc}") from None
    return list(dict.fromkeys(str(info[4][0]) for info in infos))


def vet_target(url: str, policy: TargetPolicy, resolver: Resolver = resolve) -> Target:
    """Parse ``url``, resolve its host once and vet every address (blocking).

    Raises
    ------
    TargetRefused
        ``invalid_url``, ``dns_failed`` or ``refused_private_address``.
    """
    parsed, host, port = parse_target(url)
    return Target(parsed, host, port, vet_addresses(host, resolver(host, port), policy))


async def vet_target_async(url: str, policy: TargetPolicy) -> Target:
    """As :func:`vet_target`, for the API's event loop."""
    parsed, host, port = parse_target(url)
    return Target(parsed, host, port, vet_addresses(host, await resolve_async(host, port), policy))


@dataclass(frozen=True, slots=True)
class DeliveryOutcome:
    """What one delivery attempt came to; ``reason`` is a stable code, never a receiver's or library's text."""

    delivered: bool
    reason: str | None = None
    status_code: int | None = None
    retryable: bool = True
    bytes_read: int = 0


def _reason_of(exc: httpx.HTTPError) -> str:
    if isinstance(exc, httpx.TimeoutException):
        return TIMEOUT
    if isinstance(exc, httpx.ConnectError):
        return CONNECT_FAILED
    if isinstance(exc, httpx.ProtocolError):
        return PROTOCOL_ERROR
    if isinstance(exc, httpx.NetworkError):
        return CONNECTION_LOST
    return DELIVERY_FAILED


def deliver(
    url: str,
    body: bytes,
    headers: dict[str, str],
    policy: TargetPolicy,
    *,
    timeout: float,
    max_response_bytes: int = DEFAULT_MAX_RESPONSE_BYTES,
    resolver: Resolver = resolve,
    verify_tls: object = True,
) -> DeliveryOutcome:
    """POST ``body`` to ``url``: resolve once, vet, connect to the vetted address only (blocking).

    The URL's host is replaced by the vetted IP address, so nothing resolves the name again between the
    check and the connection (no DNS rebinding); the ``Host`` header keeps the name, and httpx's
    ``sni_hostname`` request extension makes TLS send and verify the name as well. Redirects are not
    followed (a 3xx is an ``http_3xx`` failure), proxies from the environment are not used (they would
    resolve the name themselves), and at most ``max_response_bytes`` of the answer are read (plus one
    network read of 64 KiB at most); ``timeout`` bounds each step, and the attempts at successive
    addresses and the body read as a whole.

    Parameters
    ----------
    verify_tls
        As httpx's ``verify``: True (system CAs), or an ``ssl.SSLContext`` (tests bring their own CA).

    Returns
    -------
    DeliveryOutcome
        ``delivered`` on a 2xx; otherwise a stable ``reason``: ``refused_private_address``,
        ``invalid_url``, ``dns_failed``, ``connect_failed``, ``timeout``, ``protocol_error``,
        ``connection_lost``, ``delivery_failed`` or ``http_<status>``.
    """
    try:
        target = vet_target(url, policy, resolver)
    except TargetRefused as exc:
        log.warning("webhook target refused: %s (%s)", exc.reason, exc.detail)
        return DeliveryOutcome(False, exc.reason, retryable=exc.reason == DNS_FAILED)
    deadline = time.monotonic() + timeout
    netloc = target.url.netloc.decode("ascii")
    outcome = DeliveryOutcome(False, CONNECT_FAILED)
    with httpx.Client(timeout=timeout, follow_redirects=False, trust_env=False, verify=verify_tls) as client:
        for address in target.addresses:
            request = client.build_request(
                "POST",
                target.url.copy_with(host=address),
                content=body,
                headers={**headers, "Host": netloc},
                extensions={"sni_hostname": target.host},
                timeout=max(0.1, deadline - time.monotonic()),  # the next address gets what is left
            )
            try:
                response = client.send(request, stream=True)
            except httpx.ConnectError as exc:  # this address is down: the next one may answer
                log.warning("webhook connect to %s failed: %s", address, exc)
                outcome = DeliveryOutcome(False, CONNECT_FAILED)
                if time.monotonic() >= deadline:
                    break
                continue
            except httpx.HTTPError as exc:
                log.warning("webhook POST to %s failed: %s: %s", address, type(exc).__name__, exc)
                return DeliveryOutcome(False, _reason_of(exc))
            try:
                read = 0
                for chunk in response.iter_raw():
                    read += len(chunk)
                    if read >= max_response_bytes or time.monotonic() > deadline:
                        break
            except httpx.HTTPError as exc:  # the status already came: a broken body does not change it
                log.info("webhook answer body from %s cut short: %s", address, type(exc).__name__)
            finally:
                response.close()
            code = response.status_code
            if response.is_success:
                return DeliveryOutcome(True, None, code, bytes_read=read)
            return DeliveryOutcome(False, f"http_{code}", code, bytes_read=read)
    return outcome
