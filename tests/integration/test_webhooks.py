"""Webhook delivery against real sockets on 127.0.0.1: rebinding, redirects, huge answers, TLS, job JSON."""

from __future__ import annotations

import json
import socket
import ssl
import time

import anyio
import pytest

from detectflow.webhooks import (
    LOOPBACK_CIDRS,
    TargetPolicy,
    TargetRefused,
    deliver,
    sign,
    vet_target_async,
)
from tests.integration.conftest import submit, wait_job
from tests.support.images import image_bytes
from tests.support.processes import wait_for
from tests.support.receivers import Receiver, answer_status, public_first_then_loopback

LOOPBACK = TargetPolicy.of(allow_cidrs=LOOPBACK_CIDRS)
BODY = b'{"id":"j1"}'
HEADERS = {"Content-Type": "application/json", **sign("k", BODY)}


def test_rebinding_resolver_cannot_steer_a_delivery_to_loopback(monkeypatch):
    # Given a name whose first answer is public and every later answer is 127.0.0.1, and a loopback receiver
    stub, answers = public_first_then_loopback("rebind.test")
    monkeypatch.setattr(socket, "getaddrinfo", stub)
    with Receiver() as receiver:
        # When a webhook is delivered to that name under the default policy
        outcome = deliver(receiver.url("rebind.test"), BODY, HEADERS, TargetPolicy(), timeout=2)
        # Then the name was resolved once and the connection went to the vetted public address only
        assert answers == ["8.8.8.8"]
        assert not outcome.delivered and outcome.reason in ("connect_failed", "timeout")
        assert receiver.received == []


def test_rebinding_between_the_api_check_and_the_worker_is_refused(monkeypatch):
    # Given the API vetted the name while it answered a public address
    stub, answers = public_first_then_loopback("rebind.test")
    monkeypatch.setattr(socket, "getaddrinfo", stub)
    with Receiver() as receiver:
        url = receiver.url("rebind.test")
        assert anyio.run(vet_target_async, url, TargetPolicy()).addresses == ("8.8.8.8",)
        # When the worker delivers after the name turned to 127.0.0.1
        outcome = deliver(url, BODY, HEADERS, TargetPolicy(), timeout=2)
        # Then it refuses, without retrying, and the loopback receiver gets nothing
        assert answers == ["8.8.8.8", "127.0.0.1"]
        assert (outcome.delivered, outcome.reason, outcome.retryable) == (False, "refused_private_address", False)
        assert receiver.received == []


def test_default_policy_refuses_loopback_and_the_allowlist_opens_it():
    with Receiver() as receiver:
        refused = deliver(receiver.url(), BODY, HEADERS, TargetPolicy(), timeout=2)
        assert refused.reason == "refused_private_address" and receiver.received == []
        opened = deliver(receiver.url(), BODY, HEADERS, LOOPBACK, timeout=2)
        assert opened.delivered and opened.status_code == 204
        path, headers, body = receiver.received[0]
        assert (path, body, headers["Host"]) == ("/hook", BODY, f"127.0.0.1:{receiver.port}")


def test_allowed_host_keeps_its_name_in_the_host_header(monkeypatch):
    stub, _ = public_first_then_loopback("hooks.internal", public="127.0.0.1")
    monkeypatch.setattr(socket, "getaddrinfo", stub)
    with Receiver() as receiver:
        outcome = deliver(receiver.url("hooks.internal"), BODY, HEADERS, TargetPolicy.of(["hooks.internal"]), timeout=2)
        assert outcome.delivered
        assert receiver.received[0][1]["Host"] == f"hooks.internal:{receiver.port}"


def test_next_vetted_address_is_tried_when_one_refuses_the_connection():
    # Given a name with two vetted answers, the first with no listener
    def resolver(host, port):
        return ["127.0.0.2", "127.0.0.1"]

    with Receiver() as receiver:
        # When a webhook is delivered to it
        outcome = deliver(receiver.url("two.internal"), BODY, HEADERS, LOOPBACK, timeout=2, resolver=resolver)
        # Then the second address got it, under the name
        assert outcome.delivered and receiver.received[0][1]["Host"] == f"two.internal:{receiver.port}"


def test_redirect_is_not_followed():
    with Receiver() as elsewhere, Receiver(answer_status(302, {"Location": elsewhere.url()})) as receiver:
        outcome = deliver(receiver.url(), BODY, HEADERS, LOOPBACK, timeout=2)
        assert (outcome.delivered, outcome.reason, outcome.status_code) == (False, "http_302", 302)
        assert len(receiver.received) == 1 and elsewhere.received == []


def _endless_body(receiver, handler, body):
    handler.send_response(200)
    handler.send_header("Content-Length", str(1 << 30))
    handler.end_headers()
    chunk = b"x" * 65536
    try:
        while receiver.sent < 1 << 30:
            handler.wfile.write(chunk)
            receiver.sent += len(chunk)
    except OSError:  # the client hung up: the point
        pass


def test_huge_answer_body_is_cut_after_the_cap():
    # Given a receiver that answers 200 with a 1 GiB body
    with Receiver(_endless_body) as receiver:
        started = time.monotonic()
        # When a webhook is delivered with a 64 KiB cap
        outcome = deliver(receiver.url(), BODY, HEADERS, LOOPBACK, timeout=5, max_response_bytes=64 * 1024)
        elapsed = time.monotonic() - started
        # Then the status decides, at most the cap plus one network read is read, and the socket is closed
        assert outcome.delivered and outcome.status_code == 200
        assert 0 < outcome.bytes_read <= 2 * 64 * 1024
        assert elapsed < 3
        assert receiver.done.wait(10)
        assert receiver.sent < 64 << 20  # socket buffers at most, nowhere near the 1 GiB


def _garbage(receiver, handler, body):
    handler.wfile.write(b"HTTQ/9 internal-detail-7f3a at 10.0.0.12\r\n\r\n")


def test_broken_answers_and_dead_ports_give_stable_reasons():
    with Receiver(_garbage) as receiver:
        assert deliver(receiver.url(), BODY, HEADERS, LOOPBACK, timeout=2).reason == "protocol_error"
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        closed = s.getsockname()[1]
    assert deliver(f"http://127.0.0.1:{closed}/", BODY, HEADERS, LOOPBACK, timeout=2).reason == "connect_failed"


@pytest.fixture(scope="module")
def tls_ca():
    import trustme  # a test CA (the [test] extra): certificates for names that resolve to 127.0.0.1

    return trustme.CA()


def test_tls_verifies_and_sends_the_name_while_connecting_to_the_vetted_address(monkeypatch, tls_ca):
    # Given an HTTPS receiver on 127.0.0.1 whose certificate names hooks.internal, and that name allowed
    stub, _ = public_first_then_loopback("hooks.internal", public="127.0.0.1")
    monkeypatch.setattr(socket, "getaddrinfo", stub)
    server_ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    tls_ca.issue_cert("hooks.internal").configure_cert(server_ctx)
    client_ctx = ssl.create_default_context()
    tls_ca.configure_trust(client_ctx)
    policy = TargetPolicy.of(["hooks.internal"])
    with Receiver(tls=server_ctx) as receiver:
        # When a webhook goes to https://hooks.internal:<port>
        url = receiver.url("hooks.internal", scheme="https")
        outcome = deliver(url, BODY, HEADERS, policy, timeout=3, verify_tls=client_ctx)
        # Then TLS sent the name (SNI) and verified the certificate against it, though the URL held the IP
        assert outcome.delivered, outcome
        assert receiver.server_names == ["hooks.internal"]
        assert receiver.received[0][1]["Host"] == f"hooks.internal:{receiver.port}"
    # And a certificate for another name is refused
    other_ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    tls_ca.issue_cert("someone.else").configure_cert(other_ctx)
    with Receiver(tls=other_ctx) as receiver:
        outcome = deliver(receiver.url("hooks.internal", scheme="https"), BODY, HEADERS, policy, timeout=3, verify_tls=client_ctx)
        assert outcome.reason == "connect_failed" and receiver.received == []


def test_submit_resolves_off_the_event_loop(monkeypatch):
    # Given a resolver that takes 0.5 s to answer
    from detectflow.webhooks import resolve_async

    real = socket.getaddrinfo

    def slow(host, *args, **kwargs):
        if host in ("slow.test", b"slow.test"):  # anyio passes IDNA bytes
            time.sleep(0.5)
            return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", ("8.8.8.8", 80))]
        return real(host, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", slow)
    ticks = 0

    async def main():
        nonlocal ticks

        async def ticker():
            nonlocal ticks
            while True:
                await anyio.sleep(0.01)
                ticks += 1

        async with anyio.create_task_group() as tg:
            tg.start_soon(ticker)
            assert await resolve_async("slow.test", 80) == ["8.8.8.8"]
            tg.cancel_scope.cancel()

    # When the API-side check resolves the name
    anyio.run(main)
    # Then the event loop kept running meanwhile
    assert ticks >= 20


def test_unknown_name_is_dns_failed_and_retryable():
    outcome = deliver("http://no-such-host.invalid/h", BODY, HEADERS, TargetPolicy(), timeout=2)
    assert (outcome.reason, outcome.retryable) == ("dns_failed", True)
    with pytest.raises(TargetRefused):
        anyio.run(vet_target_async, "http://no-such-host.invalid/h", TargetPolicy())


# --- the same through the API and real workers


@pytest.mark.redis
def test_api_refuses_a_loopback_webhook_by_default(make_client):
    client = make_client(webhook_allow_cidrs=[])
    resp = submit(client, image_bytes("astronaut"), webhook_url="http://127.0.0.1:9/hook")
    assert resp.status_code == 422
    assert resp.json()["error"] == {
        "code": "validation_error",
        "message": "webhook_url must resolve to a public address.",
        "details": {"field": "webhook_url"},
    }
    # and an unknown name gets the same answer (no oracle on internal DNS)
    resp = submit(client, image_bytes("astronaut"), webhook_url="http://no-such-host.invalid/hook")
    assert resp.json()["error"]["message"] == "webhook_url must resolve to a public address."


@pytest.mark.redis
def test_api_refuses_webhooks_when_the_secret_is_blank(make_client):
    client = make_client(webhook_secret=None)
    resp = submit(client, image_bytes("astronaut"), webhook_url="https://8.8.8.8/hook")
    assert resp.status_code == 422 and resp.json()["error"]["code"] == "webhooks_disabled"


@pytest.mark.redis
@pytest.mark.models
def test_job_json_shows_a_stable_reason_never_the_internal_error_text(client, run_worker):
    # Given a receiver that answers with a broken status line carrying internal details
    with Receiver(_garbage) as receiver:
        run_worker("face", webhook_max_attempts=1)
        # When a job with that webhook finishes
        job = submit(client, image_bytes("astronaut"), webhook_url=receiver.url()).json()
        wait_job(client, job["id"])
        final = wait_for(
            lambda: (j := client.get(f"/v1/jobs/{job['id']}").json())["webhook"]["state"] == "failed" and j,
            30,
            what="the webhook to fail",
        )
    # Then the job says what happened in a stable code, and nothing of the exception or the answer
    assert final["webhook"]["last_error"] == "protocol_error" and final["webhook"]["attempts"] == 1
    text = json.dumps(final)
    for leak in ("internal-detail", "10.0.0.12", "HTTQ", "Error", "illegal"):
        assert leak not in text
    assert len(receiver.received) == 1


@pytest.mark.redis
@pytest.mark.models
def test_worker_without_a_secret_refuses_instead_of_signing_with_an_empty_key(client, run_worker):
    # Given an API with the secret and a worker started without it
    with Receiver() as receiver:
        run_worker("face", webhook_secret="")
        # When a job with a webhook finishes
        job = submit(client, image_bytes("astronaut"), webhook_url=receiver.url()).json()
        assert wait_job(client, job["id"])["status"] == "succeeded"
        final = wait_for(
            lambda: (j := client.get(f"/v1/jobs/{job['id']}").json())["webhook"]["state"] == "failed" and j,
            30,
            what="the webhook to be refused",
        )
    # Then nothing was sent, and the job says why
    assert final["webhook"]["last_error"] == "webhooks_disabled"
    assert receiver.received == []
