"""The Dramatiq Redis broker shared by the API (to enqueue) and the workers (to consume).

Two behaviours of Dramatiq's Redis broker are changed, and both need its internals:

- an idle consumer blocks on a wake-up list that every enqueue feeds, instead of sleeping up to a
  second, and a busy one waits for its worker threads' next ack instead of backing off towards the
  timeout (``_RedisConsumer.__next__``, swapped in through the broker's ``consumer_class``);
- the API sends a new job's message from the job store's own creation script, so "store the job"
  and "send its message" are one atomic step (the message built as ``RedisBroker.enqueue`` does,
  sent as ``dispatch.lua``'s "enqueue" does).

Dramatiq is pinned to the minor version these overrides were written against, and
``DRAMATIQ_CONTRACT`` fingerprints the code they copy: ``tests/unit/worker/test_broker.py`` fails
when an upgrade changes any of it, so the overrides are re-read, not silently wrong.
"""

from __future__ import annotations

import threading
from typing import Any
from uuid import uuid4

import dramatiq
import redis
from dramatiq import Message
from dramatiq.broker import MessageProxy
from dramatiq.brokers.redis import RedisBroker, _RedisConsumer
from dramatiq.common import compute_backoff, current_millis, dq_name
from dramatiq.errors import ConnectionClosed
from dramatiq.worker import WORKER_TIMEOUT

from detectflow.config import Settings
from detectflow.jobs.kinds import JobKind
from detectflow.jobs.store import QueuedMessage
from detectflow.jobs.stores.redis import WAKEUP_TOKENS, client_options, connect
from detectflow.keys import KeyLayout

__all__ = [
    "WakeupRedisBroker", "make_broker", "DramatiqEnqueuer", "DRAMATIQ_CONTRACT", "dispatch_args", "socket_timeout_for",
    "webhook_message",
]  # fmt: skip

#: Chance per million broker calls that Dramatiq runs its own maintenance (we also run it on a timer).
MAINTENANCE_CHANCE = 10_000
#: Longest a consumer whose prefetch is full waits for a worker thread to settle (ack or nack) a
#: message before it looks at its delayed messages and its stop flag again (seconds).
BUSY_WAIT_SECONDS = 0.05
#: How far the broker's socket timeout stays above its longest blocking call (seconds).
BLOCK_MARGIN_SECONDS = 1.0

#: sha256 (first 16 hex digits) of the Dramatiq code the overrides below copy or call with their own
#: arguments, for the pinned Dramatiq (2.2.x). A contract test recomputes them.
DRAMATIQ_CONTRACT = {
    "dramatiq.brokers.redis._RedisConsumer.__next__": "b8245bc4ab8044d6",
    "dramatiq.brokers.redis._RedisConsumer.__init__": "c626986d71660eb6",
    "dramatiq.brokers.redis._RedisConsumer.ack": "a44cb9ea8b6c3f92",
    "dramatiq.brokers.redis._RedisConsumer.nack": "573d58e9c2a0765e",
    "dramatiq.brokers.redis.RedisBroker.enqueue": "e1590deaae2f786a",
    "dramatiq.brokers.redis.RedisBroker._dispatch": "ee77793d07f17bbe",
    "dramatiq/brokers/redis/dispatch.lua": "ba4d872e4fb204eb",
}


def dispatch_args(broker: RedisBroker, command: str, queue_name: str, *extra: Any, maintenance: bool | None = None):
    """Arguments of Dramatiq's dispatch script, in the layout of ``RedisBroker._dispatch``.

    ``maintenance`` forces (or skips) the script's requeue of dead workers' messages; None leaves
    it to Dramatiq's own chance.
    """
    do_maintenance = broker._should_do_maintenance(command) if maintenance is None else int(maintenance)
    return [
        command, current_millis(), queue_name, broker.broker_id, broker.heartbeat_timeout,
        broker.dead_message_ttl, do_maintenance, broker._max_unpack_size(), *extra,
    ]  # fmt: skip


class WakeupRedisBroker(RedisBroker):
    """Dramatiq's Redis broker, with idle consumers woken by enqueues instead of sleeping.

    Dramatiq's consumer polls an idle queue with exponential backoff up to the worker timeout
    (1 s), so a job sent to an idle worker waits up to a second. Here every enqueue pushes a
    token on the queue's wake-up list and an idle consumer blocks on that list (BLPOP) for its
    backoff: the first job is picked up within a Redis round trip, and idle workers make one call
    per timeout instead of spinning.
    """

    def wakeup_key(self, queue_name: str) -> str:
        return KeyLayout(self.namespace).wakeup(queue_name)

    def enqueue(self, message: Message, *, delay: int | None = None) -> Message:
        """Enqueue ``message`` (as RedisBroker.enqueue) and wake an idle consumer of its queue."""
        queue_name = message.queue_name
        message = message.copy(options={"redis_message_id": str(uuid4())})
        if delay is not None:
            queue_name = dq_name(queue_name)
            message = message.copy(queue_name=queue_name, options={"eta": current_millis() + delay})
        self.emit_before("enqueue", message, delay)
        pipe = self.client.pipeline(transaction=False)
        args = dispatch_args(self, "enqueue", queue_name, message.options["redis_message_id"], message.encode())
        self.scripts["dispatch"](args=args, keys=[self.namespace], client=pipe)
        if delay is None:
            key = self.wakeup_key(queue_name)
            pipe.lpush(key, 1)
            pipe.ltrim(key, 0, WAKEUP_TOKENS - 1)
        pipe.execute()
        self.emit_after("enqueue", message, delay)
        return message

    def run_maintenance(self, queue_name: str) -> None:
        """Beat for this broker and requeue the messages of dead workers on ``queue_name`` now."""
        self.scripts["dispatch"](args=dispatch_args(self, "qsize", queue_name, maintenance=True), keys=[self.namespace])

    @property
    def consumer_class(self):
        return _WakeupConsumer


class _WakeupConsumer(_RedisConsumer):
    """_RedisConsumer.__next__ with the idle sleep replaced by a BLPOP on the wake-up list, and no
    backoff while busy: the consumer waits for an ack, so a thread that finishes a job gets the next
    one at once, and a busy consumer does not wake up when nothing has changed."""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self._settled = threading.Event()  # set by the worker threads' acks and nacks

    def ack(self, message):
        try:
            super().ack(message)
        finally:
            self._settled.set()

    def nack(self, message):
        try:
            super().nack(message)
        finally:
            self._settled.set()

    def __next__(self):
        try:
            while True:
                try:
                    data = self.message_cache.pop(0)
                    if data is None:
                        continue
                    self.misses = 0
                    message = Message.decode(data)
                    self.queued_message_ids.add(message.message_id)
                    return MessageProxy(message)
                except IndexError:
                    messages = []
                    if self.outstanding_message_count < self.prefetch:
                        self.message_cache = messages = self.broker.do_fetch(
                            self.queue_name, self.prefetch - self.outstanding_message_count
                        )
                    if not messages:
                        if self.outstanding_message_count >= self.prefetch:
                            # Busy: every thread has its message. Dramatiq would back off towards
                            # the worker timeout here (up to 1 s), leaving a thread idle after each
                            # job; wait for the next ack instead (no Redis call). An ack's count is
                            # down before its event is set, so clearing after the wait loses none.
                            self._settled.wait(BUSY_WAIT_SECONDS)
                            self._settled.clear()
                            return None
                        self.misses, backoff_ms = compute_backoff(self.misses, max_backoff=self.timeout)
                        self.broker.client.blpop([self.broker.wakeup_key(self.queue_name)], backoff_ms / 1000)
                        return None
        except redis.ConnectionError as e:
            raise ConnectionClosed(e) from None


def socket_timeout_for(configured: float, worker_timeout_ms: int = WORKER_TIMEOUT) -> float:
    """The broker client's read timeout: the configured one, raised above the longest blocking call.

    An idle consumer blocks on its wake-up list (BLPOP) for up to Dramatiq's worker timeout
    (``dramatiq_worker_timeout``, 1 s by default); a socket timeout shorter than that would cut
    every idle wait. Dramatiq's other blocking calls (its results and rate-limit backends) are not
    used by detectflow.
    """
    return max(configured, worker_timeout_ms / 1000 + BLOCK_MARGIN_SECONDS)


def make_broker(settings: Settings, *, set_global: bool = True, max_connections: int | None = None) -> WakeupRedisBroker:
    """A Redis broker whose namespace is the settings' key prefix.

    A worker that stops beating for ``worker_dead_after_seconds`` is considered dead, and its
    fetched-but-unfinished messages go back on the queue. The client has the settings' socket and
    connect timeouts; ``max_connections`` bounds its pool (the API's; a worker's threads bound its own).
    """
    password = settings.redis_password.get_secret_value() if settings.redis_password else None
    options = client_options(settings, max_connections=max_connections)
    options["socket_timeout"] = socket_timeout_for(options["socket_timeout"])
    client = connect(settings.redis_url, password, **options)
    broker = WakeupRedisBroker(
        client=client,
        namespace=settings.redis_prefix,
        heartbeat_timeout=int(settings.worker_dead_after_seconds * 1000),
        maintenance_chance=MAINTENANCE_CHANCE,
    )
    if set_global:
        dramatiq.set_broker(broker)
    return broker


def webhook_message(kind: JobKind, job_id: str) -> QueuedMessage:
    """The Dramatiq message of a job's webhook, built as ``RedisBroker.enqueue`` would, for the job
    store to send in its final transition (the outbox: see ``jobs.stores.redis``)."""
    message = Message(
        queue_name=kind.webhook_queue, actor_name=kind.webhook_actor_name, args=(job_id,), kwargs={},
        options={"redis_message_id": str(uuid4())},
    )  # fmt: skip
    return QueuedMessage(kind.webhook_queue, message.options["redis_message_id"], message.encode())


class DramatiqEnqueuer:
    """Builds the Dramatiq message of a job for the actor of its kind, without importing the actor's code.

    The job store sends it in the script that creates the job (see ``jobs.stores.redis``), the way
    ``RedisBroker.enqueue`` would: a message id of its own in ``options``, the encoded message.
    """

    def __init__(self, broker: WakeupRedisBroker) -> None:
        self.broker = broker

    def message(self, kind: JobKind, job_id: str) -> QueuedMessage:
        message = Message(
            queue_name=kind.queue, actor_name=kind.actor_name, args=(job_id,), kwargs={},
            options={"redis_message_id": str(uuid4())},
        )  # fmt: skip
        return QueuedMessage(kind.queue, message.options["redis_message_id"], message.encode())

    def webhook_message(self, kind: JobKind, job_id: str) -> QueuedMessage:
        """The message of a job's webhook, for a final transition to send (see :func:`webhook_message`)."""
        return webhook_message(kind, job_id)

    def enqueue(self, kind: JobKind, job_id: str) -> None:
        """Send a job's message on its own (a redelivery; new jobs are sent by the store)."""
        message = Message(queue_name=kind.queue, actor_name=kind.actor_name, args=(job_id,), kwargs={}, options={})
        self.broker.enqueue(message)
