"""Contract test: the Dramatiq internals the broker overrides are the ones they were written against."""

from __future__ import annotations

import hashlib
import inspect
from importlib import import_module
from importlib.metadata import version
from pathlib import Path

import dramatiq
import pytest

from detectflow.worker.broker import DRAMATIQ_CONTRACT, WakeupRedisBroker, _WakeupConsumer, dispatch_args, socket_timeout_for


def _fingerprint(name: str) -> str:
    if name.endswith(".lua"):
        data = (Path(dramatiq.__file__).parent.parent / name).read_bytes()
    else:
        module, _, attr = name.rpartition(".")
        module, _, owner = module.rpartition(".")
        data = inspect.getsource(getattr(getattr(import_module(module), owner), attr)).encode()
    return hashlib.sha256(data).hexdigest()[:16]


@pytest.mark.parametrize("name", sorted(DRAMATIQ_CONTRACT))
def test_broker_overrides_match_the_pinned_dramatiq(name):
    assert _fingerprint(name) == DRAMATIQ_CONTRACT[name], (
        f"Dramatiq {version('dramatiq')} changed {name}: re-read WakeupRedisBroker.enqueue, _WakeupConsumer "
        "and dispatch_args against it, then update DRAMATIQ_CONTRACT"
    )


def test_broker_swaps_its_consumer_through_consumer_class():
    broker = WakeupRedisBroker(url="redis://127.0.0.1:1/0")
    assert broker.consumer_class is _WakeupConsumer
    consumer = broker.consume("detect.face", prefetch=2, timeout=100)
    assert isinstance(consumer, _WakeupConsumer) and consumer.prefetch == 2


@pytest.mark.redis
def test_dispatch_args_follow_the_scripts_argv_layout(redis_server):
    broker = WakeupRedisBroker(url=redis_server.url, namespace="ns")
    args = dispatch_args(broker, "qsize", "detect.face", "extra", maintenance=True)
    # dispatch.lua: command, timestamp, queue_name, worker_id, heartbeat_timeout, dead_message_ttl,
    # do_maintenance, max_unpack_size, ...
    assert args[0] == "qsize" and args[2] == "detect.face" and args[3] == broker.broker_id
    assert args[4:7] == [broker.heartbeat_timeout, broker.dead_message_ttl, 1] and args[-1] == "extra"
    lua = (Path(dramatiq.__file__).parent / "brokers" / "redis" / "dispatch.lua").read_text()
    assert "local do_maintenance = ARGV[7]" in lua and "local max_unpack_size = ARGV[8]" in lua


def test_broker_socket_timeout_stays_above_the_longest_blocking_call():
    assert socket_timeout_for(10.0, 1000) == 10.0
    # an idle consumer's BLPOP lasts up to the worker timeout: a raised one raises the socket timeout
    assert socket_timeout_for(10.0, 30_000) == 31.0
    assert socket_timeout_for(1.5, 1000) == 2.0


@pytest.mark.redis
def test_broker_busy_consumer_waits_for_an_ack_then_takes_the_next_message(redis_server):
    import threading

    from dramatiq import Message

    broker = WakeupRedisBroker(url=redis_server.url, namespace="busy")
    for n in (1, 2):
        broker.enqueue(Message(queue_name="q", actor_name="a", args=(n,), kwargs={}, options={}))
    consumer = broker.consume("q", prefetch=1, timeout=100)

    def take():
        for _ in range(50):  # an idle consumer answers None after each wake-up wait
            message = next(consumer)
            if message is not None:
                return message
        raise AssertionError("no message")

    first = take()
    assert first.args == (1,)
    # Given its prefetch is full, when a worker thread acks the message while the consumer waits
    ack = threading.Timer(0.02, consumer.ack, [first])
    ack.start()
    # Then the wait ends without a message (nothing was fetched while busy) and the ack is not lost
    assert next(consumer) is None
    ack.join()
    assert take().args == (2,) and consumer.outstanding_message_count == 1
    broker.close()
