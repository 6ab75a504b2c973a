"""Unit tests of webhook signing and target vetting (pure: no socket, a stub resolver)."""

from __future__ import annotations

import hashlib
import hmac
import ipaddress

import pytest

from detectflow.webhooks import (
    SIGNATURE_HEADER,
    TIMESTAMP_HEADER,
    TargetPolicy,
    TargetRefused,
    address_refusal,
    host_is_allowed,
    sign,
    signing_key,
    vet_target,
    verify,
)


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


def test_sign_refuses_an_empty_secret():
    with pytest.raises(ValueError):
        sign("", b"{}")
    assert not verify("", b"{}", "t=1,v1=00", now=1)


def test_signing_key_is_none_when_unset_or_blank():
    from pydantic import SecretStr

    assert signing_key(None) is None
    assert signing_key(SecretStr("")) is None
    assert signing_key(SecretStr("  ")) is None
    assert signing_key(SecretStr("k")) == "k"


@pytest.mark.parametrize(
    ("address", "why"),
    [
        ("127.0.0.1", "loopback"),
        ("127.8.9.10", "loopback"),
        ("::1", "loopback"),
        ("10.1.2.3", "private"),
        ("172.16.0.1", "private"),
        ("192.168.1.1", "private"),
        ("fc00::1", "private"),
        ("169.254.169.254", "metadata"),
        ("169.254.170.2", "metadata"),
        ("fd00:ec2::254", "metadata"),
        ("100.100.100.200", "metadata"),
        ("168.63.129.16", "metadata"),
        ("169.254.1.1", "link_local"),
        ("fe80::1", "link_local"),
        ("fe80::1%eth0", "link_local"),
        ("100.64.0.1", "reserved"),
        ("192.0.2.1", "private"),  # documentation ranges count as private in ipaddress
        ("198.18.0.1", "private"),  # benchmarking
        ("0.0.0.0", "unspecified"),
        ("::", "unspecified"),
        ("224.0.0.1", "multicast"),
        ("ff02::1", "multicast"),
        # IPv6 spellings of IPv4 addresses are judged as the IPv4 address
        ("::ffff:127.0.0.1", "loopback"),
        ("::ffff:169.254.169.254", "metadata"),
        ("2002:7f00:1::", "loopback"),  # 6to4 of 127.0.0.1
        ("2002:a9fe:a9fe::", "metadata"),  # 6to4 of 169.254.169.254
        ("64:ff9b::a00:1", "private"),  # NAT64 of 10.0.0.1
    ],
)
def test_address_refusal_names_why_an_internal_address_is_refused(address, why):
    assert address_refusal(ipaddress.ip_address(address)) == why


@pytest.mark.parametrize("address", ["8.8.8.8", "93.184.215.14", "2606:4700:4700::1111", "::ffff:8.8.8.8", "64:ff9b::808:808"])
def test_address_refusal_allows_global_unicast(address):
    assert address_refusal(ipaddress.ip_address(address)) is None


def test_address_refusal_allowlist_opens_its_networks_only():
    policy = TargetPolicy.of(allow_cidrs=["127.0.0.0/8", "::1/128"])
    assert address_refusal(ipaddress.ip_address("127.0.0.1"), policy.allow_cidrs) is None
    assert address_refusal(ipaddress.ip_address("::1"), policy.allow_cidrs) is None
    assert address_refusal(ipaddress.ip_address("::ffff:127.0.0.1"), policy.allow_cidrs) is None
    assert address_refusal(ipaddress.ip_address("10.0.0.1"), policy.allow_cidrs) == "private"
    assert address_refusal(ipaddress.ip_address("169.254.169.254"), policy.allow_cidrs) == "metadata"


def test_address_refusal_allowlist_never_opens_multicast_or_unspecified():
    everything = TargetPolicy.of(allow_cidrs=["0.0.0.0/0", "::/0"]).allow_cidrs
    assert address_refusal(ipaddress.ip_address("224.0.0.251"), everything) == "multicast"
    assert address_refusal(ipaddress.ip_address("0.0.0.0"), everything) == "unspecified"
    assert address_refusal(ipaddress.ip_address("10.0.0.1"), everything) is None


def test_host_is_allowed_matches_names_and_subdomain_wildcards():
    allow = ["hooks.internal", "*.svc.cluster.local"]
    assert host_is_allowed("HOOKS.internal.", allow)
    assert host_is_allowed("receiver.ns.svc.cluster.local", allow)
    assert not host_is_allowed("svc.cluster.local", allow)
    assert not host_is_allowed("evil-svc.cluster.local", allow)
    assert not host_is_allowed("hooks.internal.evil.example", allow)


def _resolver(*answers: str):
    calls = []

    def resolve(host: str, port: int) -> list[str]:
        calls.append((host, port))
        return list(answers)

    resolve.calls = calls
    return resolve


def test_vet_target_resolves_once_and_keeps_the_vetted_addresses():
    resolver = _resolver("8.8.8.8", "2606:4700:4700::1111")
    target = vet_target("https://hooks.example/x?y=1", TargetPolicy(), resolver)
    assert target.addresses == ("8.8.8.8", "2606:4700:4700::1111")
    assert (target.host, target.port) == ("hooks.example", 443)
    assert resolver.calls == [("hooks.example", 443)]


def test_vet_target_refuses_when_any_answer_is_private():
    # a resolver mixing a public and a loopback answer is trusted with neither
    with pytest.raises(TargetRefused) as err:
        vet_target("http://hooks.example:8080/", TargetPolicy(), _resolver("8.8.8.8", "127.0.0.1"))
    assert err.value.reason == "refused_private_address"


def test_vet_target_allowed_host_may_be_private_but_not_multicast():
    policy = TargetPolicy.of(allow_hosts=["hooks.internal"])
    assert vet_target("http://hooks.internal/", policy, _resolver("10.0.0.7")).addresses == ("10.0.0.7",)
    with pytest.raises(TargetRefused):
        vet_target("http://other.internal/", policy, _resolver("10.0.0.7"))
    with pytest.raises(TargetRefused):
        vet_target("http://hooks.internal/", policy, _resolver("239.1.1.1"))


@pytest.mark.parametrize(
    "url", ["ftp://example.org/", "http:///nohost", "hooks.example/path", "http://user:pw@hooks.example/", "http://[::1"]
)
def test_vet_target_refuses_what_is_not_an_http_url(url):
    with pytest.raises(TargetRefused) as err:
        vet_target(url, TargetPolicy(), _resolver("8.8.8.8"))
    assert err.value.reason == "invalid_url"


def test_vet_target_literal_addresses_need_no_resolver():
    from detectflow.webhooks import resolve

    assert vet_target("http://8.8.8.8:81/h", TargetPolicy(), resolve).addresses == ("8.8.8.8",)
    with pytest.raises(TargetRefused) as err:
        vet_target("http://[::ffff:169.254.169.254]/latest", TargetPolicy(), resolve)
    assert err.value.reason == "refused_private_address"


def test_vet_target_unresolvable_name_is_dns_failed():
    with pytest.raises(TargetRefused) as err:
        vet_target("http://x.example/", TargetPolicy(), _resolver())
    assert err.value.reason == "dns_failed"
