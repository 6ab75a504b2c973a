"""Unit tests of webhook signing."""

from __future__ import annotations

import hashlib
import hmac

import pytest

from detectflow.webhooks import SIGNATURE_HEADER, TIMESTAMP_HEADER, is_private_target, sign, verify


def test_sign_is_hmac_sha256_of_timestamp_and_body():
    headers = sign("s3cret", b'{"a":1}', timestamp=1700000000)
    expected = hmac.new(b"s3cret", b'1700000000.{"a":1}', hashlib.sha256).hexdigest()
    assert headers[SIGNATURE_HEADER] == f"t=1700000000,v1={expected}"
    assert headers[TIMESTAMP_HEADER] == "1700000000"


def test_verify_accepts_fresh_and_refuses_tampered_or_stale():
    body = b'{"id":"x"}'
    sig = sign("k", body, timestamp=1000)[SIGNATURE_HEADER]
    assert verify("k", body, sig, now=1010)
    assert not verify("k", body + b" ", sig, now=1010)
    assert not verify("other", body, sig, now=1010)
    assert not verify("k", body, sig, now=1000 + 301)
    assert not verify("k", body, "garbage", now=1000)


@pytest.mark.parametrize(
    "url", ["http://127.0.0.1/h", "http://10.1.2.3/h", "http://[::1]:8080/h", "http://169.254.169.254/latest", "http://no-such-host.invalid/"]
)
def test_is_private_target_refuses_internal_addresses(url):
    assert is_private_target(url)


def test_is_private_target_allows_public_literal_address():
    assert not is_private_target("https://8.8.8.8/hook")
