"""Dramatiq actors: detect an image of a job; deliver a finished job's webhook."""

from __future__ import annotations

import json
import logging
import time

import dramatiq
import httpx
from dramatiq.middleware import CurrentMessage, TimeLimitExceeded

from detectflow.config import Task
from detectflow.jobs.images import decode_image
from detectflow.jobs.models import DetectflowError, ErrorCode, WebhookState, utcnow
from detectflow.jobs.public import job_public
from detectflow.worker.broker import detect_actor_name, webhook_actor_name, webhook_queue
from detectflow.worker.context import WorkerContext
from detectflow.webhooks import is_private_target, sign

__all__ = ["declare_actors"]

log = logging.getLogger("detectflow.worker")


def declare_actors(broker: dramatiq.Broker, ctx: WorkerContext, task: Task) -> tuple[dramatiq.Actor, dramatiq.Actor]:
    """The detect and webhook actors of ``task``, bound to ``ctx``."""
    s = ctx.settings

    def detect(job_id: str) -> None:
        job, data = ctx.store.load(job_id)
        if job is None or data is None:
            raise DetectflowError(ErrorCode.image_expired, "The job's image expired before it was processed.")
        image = decode_image(data)
        t0 = time.perf_counter()
        detections = ctx.require_detector().detect(image)
        inference_ms = (time.perf_counter() - t0) * 1000
        now = utcnow()
        started = job.started_at or now
        ctx.hand_over(
            {
                "image": {"width": int(image.shape[1]), "height": int(image.shape[0])},
                "detections": [d.to_dict() for d in detections],
                "model": ctx.require_detector().info.to_dict(),
                "timings_ms": {
                    "queued": round((started - job.created_at).total_seconds() * 1000, 3),
                    "inference": round(inference_ms, 3),
                    "total": round((now - job.created_at).total_seconds() * 1000, 3),
                },
            }
        )

    def deliver_webhook(job_id: str) -> None:
        job = ctx.store.get(job_id)
        if job is None or job.webhook is None or job.webhook.state == "delivered":
            return
        secret = s.webhook_secret.get_secret_value() if s.webhook_secret else ""
        body = json.dumps(job_public(job, s.api_public_url), separators=(",", ":")).encode()
        attempt = CurrentMessage.get_current_message().options.get("retries", 0) + 1
        state = WebhookState(url=job.webhook.url, attempts=attempt)
        if not s.allows_private_webhooks and is_private_target(job.webhook.url):
            # checked again at delivery: DNS may have changed since the job was accepted
            state.state, state.last_error = "failed", "target resolves to a private address"
            ctx.store.set_webhook_state(job_id, state)
            return
        try:
            resp = httpx.post(
                job.webhook.url,
                content=body,
                headers={"Content-Type": "application/json", "User-Agent": "detectflow-webhook", **sign(secret, body)},
                timeout=s.webhook_timeout_seconds,
            )
            state.last_status_code = resp.status_code
            resp.raise_for_status()
        except Exception as exc:
            state.last_error = f"{type(exc).__name__}: {exc}"[:500]
            state.state = "failed" if attempt >= s.webhook_max_attempts else "pending"
            ctx.store.set_webhook_state(job_id, state)
            log.warning("webhook attempt %d failed: %s", attempt, state.last_error)
            raise
        state.state, state.delivered_at = "delivered", utcnow()
        ctx.store.set_webhook_state(job_id, state)

    detect_actor = dramatiq.actor(
        detect,
        actor_name=detect_actor_name(task),
        queue_name=task.queue_name,
        broker=broker,
        max_retries=s.worker_max_retries,
        min_backoff=s.worker_min_backoff_ms,
        max_backoff=s.worker_max_backoff_ms,
        time_limit=s.worker_time_limit_seconds * 1000,
        throws=(DetectflowError, TimeLimitExceeded),
    )
    webhook_actor = dramatiq.actor(
        deliver_webhook,
        actor_name=webhook_actor_name(task),
        queue_name=webhook_queue(task),
        broker=broker,
        max_retries=s.webhook_max_attempts - 1,
        min_backoff=int(s.webhook_backoff_seconds * 1000),
        max_backoff=60_000,
        time_limit=int(s.webhook_timeout_seconds * 1000) + 5_000,
    )
    return detect_actor, webhook_actor
