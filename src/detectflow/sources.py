"""Remote inputs (``source_url``): fetched by the worker under the webhooks' SSRF rules, with a size cap and a timeout."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

import httpx

from detectflow.jobs.errors import DetectflowError, ErrorCode
from detectflow.webhooks import INVALID_URL, Resolver, TargetPolicy, TargetRefused, parse_target, resolve, vet_target

__all__ = ["check_source_url", "fetch_source", "HEAD_BYTES"]

log = logging.getLogger("detectflow.sources")

#: Leading bytes a ``limit_for`` callback sees to choose a cap (a video container's magic needs 12; bytes).
HEAD_BYTES = 256


def check_source_url(url: str, allow_http: bool = False) -> str:
    """``url`` if it is an absolute https URL (http too with ``allow_http``) without credentials.

    Raises
    ------
    DetectflowError
        ``validation_error`` for anything else (the API's answer at submission).
    """
    try:
        parsed, _, _ = parse_target(url)
    except TargetRefused:
        parsed = None
    if parsed is None or (parsed.scheme != "https" and not allow_http):
        scheme = "http(s)" if allow_http else "https"
        raise DetectflowError(
            ErrorCode.validation_error, f"source_url must be an absolute {scheme} URL.", {"field": "source_url"}
        )
    return url


def _unreachable(message: str) -> DetectflowError:
    return DetectflowError(ErrorCode.source_unreachable, message)


def fetch_source(
    url: str,
    policy: TargetPolicy,
    *,
    timeout: float,
    max_bytes: int,
    resolver: Resolver = resolve,
    verify_tls: object = True,
    limit_for: Callable[[bytes], int] | None = None,
) -> bytes:
    """GET ``url``'s bytes the way webhooks are POSTed: resolved once, vetted, connected to the vetted address only.

    No redirects are followed, no proxy from the environment is used, ``timeout`` bounds the whole
    fetch, and at most ``max_bytes`` are read (a declared or an actual length above it stops the read).
    ``limit_for`` may lower the cap once the first :data:`HEAD_BYTES` are in, from what they are
    (a video's cap is not an image's).

    Raises
    ------
    DetectflowError
        ``source_unreachable`` (refused address, DNS, connection, timeout, a non-2xx answer) or
        ``source_too_large``; the message names the step, never the body.
    """
    try:
        target = vet_target(url, policy, resolver)
    except TargetRefused as exc:
        what = "an invalid URL" if exc.reason == INVALID_URL else exc.reason.replace("_", " ")
        raise _unreachable(f"source_url was not fetched: {what}.") from None
    deadline = time.monotonic() + timeout
    netloc = target.url.netloc.decode("ascii")
    last = "connect failed"
    with httpx.Client(timeout=timeout, follow_redirects=False, trust_env=False, verify=verify_tls) as client:
        for address in target.addresses:
            request = client.build_request(
                "GET",
                target.url.copy_with(host=address),
                headers={"Host": netloc, "User-Agent": "detectflow-source"},
                extensions={"sni_hostname": target.host},
                timeout=max(0.1, deadline - time.monotonic()),
            )
            try:
                response = client.send(request, stream=True)
            except httpx.ConnectError:
                last = "connect failed"
                continue
            except httpx.HTTPError as exc:
                raise _unreachable(f"source_url was not fetched: {type(exc).__name__}.") from None
            try:
                if not response.is_success:
                    raise _unreachable(f"source_url answered HTTP {response.status_code}.")
                declared = response.headers.get("content-length", "")
                if declared.isdigit() and int(declared) > max_bytes:
                    raise _too_large(max_bytes)
                chunks, read, cap = [], 0, max_bytes
                decided = limit_for is None
                for chunk in response.iter_bytes():
                    read += len(chunk)
                    if not decided and read >= HEAD_BYTES:
                        cap, decided = min(max_bytes, limit_for((b"".join(chunks) + chunk)[:HEAD_BYTES])), True
                    if read > cap:
                        raise _too_large(cap)
                    if time.monotonic() > deadline:
                        raise _unreachable(f"source_url did not arrive within {timeout:g} s.")
                    chunks.append(chunk)
                data = b"".join(chunks)
                if not decided and len(data) > (cap := min(max_bytes, limit_for(data[:HEAD_BYTES]))):
                    raise _too_large(cap)
                return data
            except httpx.HTTPError as exc:
                raise _unreachable(f"source_url was cut short: {type(exc).__name__}.") from None
            finally:
                response.close()
    raise _unreachable(f"source_url was not fetched: {last}.")


def _too_large(max_bytes: int) -> DetectflowError:
    return DetectflowError(ErrorCode.source_too_large, f"source_url holds more than {max_bytes} bytes.")
