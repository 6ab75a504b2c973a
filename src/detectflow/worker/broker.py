"""The Dramatiq Redis broker shared by the API (to enqueue) and the workers (to consume)."""

from __future__ import annotations

import dramatiq
from dramatiq import Message
from dramatiq.brokers.redis import RedisBroker

from detectflow.config import Settings, Task
from detectflow.jobs.store import connect

__all__ = ["make_broker", "DramatiqEnqueuer", "detect_actor_name", "webhook_actor_name", "webhook_queue"]

#: Chance per million broker calls that Dramatiq runs its own maintenance (we also run it on a timer).
MAINTENANCE_CHANCE = 10_000


def detect_actor_name(task: Task) -> str:
    return f"detect_{task.value}"


def webhook_actor_name(task: Task) -> str:
    return f"deliver_webhook_{task.value}"


def webhook_queue(task: Task) -> str:
    return f"webhook.{task.value}"


def make_broker(settings: Settings, *, set_global: bool = True) -> RedisBroker:
    """A Redis broker whose namespace is the settings' key prefix.

    A worker that stops beating for ``worker_dead_after_seconds`` is considered dead, and its
    fetched-but-unfinished messages go back on the queue.
    """
    password = settings.redis_password.get_secret_value() if settings.redis_password else None
    client = connect(settings.redis_url, password, health_check_interval=30)
    broker = RedisBroker(
        client=client,
        namespace=settings.redis_prefix,
        heartbeat_timeout=int(settings.worker_dead_after_seconds * 1000),
        maintenance_chance=MAINTENANCE_CHANCE,
    )
    if set_global:
        dramatiq.set_broker(broker)
    return broker


class DramatiqEnqueuer:
    """Enqueues a job id for the detect actor of its task without importing the actor's code."""

    def __init__(self, broker: RedisBroker) -> None:
        self.broker = broker

    def enqueue(self, task: Task, job_id: str) -> None:
        self.broker.enqueue(
            Message(
                queue_name=task.queue_name,
                actor_name=detect_actor_name(task),
                args=(job_id,),
                kwargs={},
                options={},
            )
        )
