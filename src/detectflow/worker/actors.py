"""Dramatiq actors: run a job of the worker's kind (through its task's runner); deliver a finished job's webhook."""

from __future__ import annotations

import json
import logging

import dramatiq
from dramatiq.middleware import CurrentMessage, TimeLimitExceeded

from detectflow.jobs.errors import DetectflowError, ErrorCode
from detectflow.jobs.records import WebhookState, utcnow
from detectflow.webhooks import TargetPolicy, deliver, sign, signing_key
from detectflow.worker import metrics
from detectflow.worker.context import WorkerContext
from detectflow.worker.tasks import runner_for
from detectflow.worker.tasks.video import run_segment

__all__ = ["declare_actors", "declare_segment_actor", "EVENT_HEADER"]

#: Header naming a webhook delivery's event: ``job.finished`` (the job ended) or ``job.progress``.
EVENT_HEADER = "X-Detectflow-Event"

log = logging.getLogger("detectflow.worker")


class WebhookNotDelivered(Exception):
    """A delivery attempt failed with a stable reason; Dramatiq retries it with backoff."""


def declare_actors(broker: dramatiq.Broker, ctx: WorkerContext) -> tuple[dramatiq.Actor, dramatiq.Actor]:
    """The job and webhook actors of the worker's kind, bound to ``ctx``."""
    s = ctx.settings
    kind = ctx.kind

    def run_job(job_id: str) -> None:
        job, data = ctx.load(job_id)
        if job is None or data is None:
            raise DetectflowError(ErrorCode.image_expired, "The job's image expired before it was processed.")
        ctx.hand_over(runner_for(job.task, job.media)(ctx, job, data))  # the pool's kinds share one actor

    policy = TargetPolicy.of(s.webhook_allow_hosts, s.webhook_allow_cidrs)

    def deliver_webhook(job_id: str) -> None:
        job = ctx.store.get(job_id)
        if job is None or job.webhook is None or job.webhook.state == "delivered":
            return
        attempt = CurrentMessage.get_current_message().options.get("retries", 0) + 1
        state = WebhookState(
            url=job.webhook.url, attempts=attempt, progress_interval_seconds=job.webhook.progress_interval_seconds
        )
        secret = signing_key(s.webhook_secret)
        if secret is None:  # never sign with an empty key: this worker was started without the secret
            state.state, state.last_error = "failed", "webhooks_disabled"
            ctx.store.set_webhook_state(job_id, state)
            log.error("webhook not sent: DETECTFLOW_WEBHOOK_SECRET is not set on this worker")
            return
        body = job.public(s.api_public_url).model_dump_json().encode()
        headers = {
            "Content-Type": "application/json", "User-Agent": "detectflow-webhook", EVENT_HEADER: "job.finished",
            **sign(secret, body),
        }  # fmt: skip
        # resolved again here (DNS may have changed since the API checked) and connected to what was vetted
        outcome = deliver(
            job.webhook.url,
            body,
            headers,
            policy,
            timeout=s.webhook_timeout_seconds,
            max_response_bytes=s.webhook_max_response_bytes,
        )
        state.last_status_code = outcome.status_code
        if outcome.delivered:
            metrics.webhook_attempted(kind.served_by.value, "delivered")
            state.state, state.delivered_at = "delivered", utcnow()
            ctx.store.set_webhook_state(job_id, state)
            return
        state.last_error = outcome.reason  # a stable code: receivers' and libraries' texts stay in the logs
        final = not outcome.retryable or attempt >= s.webhook_max_attempts
        state.state = "failed" if final else "pending"
        metrics.webhook_attempted(kind.served_by.value, "failed" if final else "retried")
        ctx.store.set_webhook_state(job_id, state)
        log.warning("webhook attempt %d failed: %s", attempt, outcome.reason)
        if not final:
            raise WebhookNotDelivered(outcome.reason or "")

    job_actor = dramatiq.actor(
        run_job,
        actor_name=kind.actor_name,
        queue_name=kind.queue,
        broker=broker,
        max_retries=s.worker_max_retries,
        min_backoff=s.worker_min_backoff_ms,
        max_backoff=s.worker_max_backoff_ms,
        time_limit=s.worker_time_limit_seconds * 1000,
        throws=(DetectflowError, TimeLimitExceeded),
    )
    webhook_actor = dramatiq.actor(
        deliver_webhook,
        actor_name=kind.webhook_actor_name,
        queue_name=kind.webhook_queue,
        broker=broker,
        max_retries=s.webhook_max_attempts - 1,
        min_backoff=int(s.webhook_backoff_seconds * 1000),
        max_backoff=60_000,
        time_limit=int(s.webhook_timeout_seconds * 1000) + 5_000,
    )
    return job_actor, webhook_actor


def declare_segment_actor(broker: dramatiq.Broker, ctx: WorkerContext) -> dramatiq.Actor:
    """The actor running one segment of a video job of the worker's kind, on the kind's own queue.

    It is retried like a job; the JobLifecycle middleware skips it once the job is no longer
    running (cancelled, failed) and fails the job when its retries are exhausted.
    """
    s = ctx.settings

    def run_video_segment(job_id: str, index: int) -> None:
        outcome = run_segment(ctx, job_id, index)
        if outcome is not None:
            ctx.hand_over(outcome)

    actor = dramatiq.actor(
        run_video_segment,
        actor_name=ctx.kind.segment_actor_name,
        queue_name=ctx.kind.queue,
        broker=broker,
        max_retries=s.worker_max_retries,
        min_backoff=s.worker_min_backoff_ms,
        max_backoff=s.worker_max_backoff_ms,
        time_limit=s.worker_time_limit_seconds * 1000,
        throws=(DetectflowError, TimeLimitExceeded),
    )
    ctx.segment_actor = actor
    ctx.progress_actor = _declare_progress_actor(broker, ctx)
    return actor


def _declare_progress_actor(broker: dramatiq.Broker, ctx: WorkerContext) -> dramatiq.Actor:
    """The actor delivering a running video job's progress webhook (``job.progress``) on the webhook queue.

    Best effort: a delivery is tried once (the next one is due within the job's interval anyway),
    only while the job runs, and never touches the job's webhook state (the final delivery's).
    """
    s = ctx.settings
    policy = TargetPolicy.of(s.webhook_allow_hosts, s.webhook_allow_cidrs)

    def deliver_progress(job_id: str) -> None:
        job = ctx.store.get(job_id)
        progress = job.video_progress() if job is not None and job.webhook is not None else None
        if progress is None:  # finished meanwhile (its final webhook tells the rest), or gone
            return
        secret = signing_key(s.webhook_secret)
        if secret is None:
            log.error("progress webhook not sent: DETECTFLOW_WEBHOOK_SECRET is not set on this worker")
            return
        public = job.public(s.api_public_url).model_dump(mode="json")
        body = json.dumps({"event": "job.progress", **public}, separators=(",", ":")).encode()
        headers = {
            "Content-Type": "application/json", "User-Agent": "detectflow-webhook", EVENT_HEADER: "job.progress",
            **sign(secret, body),
        }  # fmt: skip
        outcome = deliver(
            job.webhook.url, body, headers, policy,
            timeout=s.webhook_timeout_seconds, max_response_bytes=s.webhook_max_response_bytes,
        )  # fmt: skip
        metrics.webhook_attempted(ctx.kind.served_by.value, "progress" if outcome.delivered else "progress_failed")
        if not outcome.delivered:
            log.warning("progress webhook not delivered: %s", outcome.reason)

    return dramatiq.actor(
        deliver_progress,
        actor_name=f"deliver_progress_{ctx.kind.served_by.value}",
        queue_name=ctx.kind.webhook_queue,
        broker=broker,
        max_retries=0,
        time_limit=int(s.webhook_timeout_seconds * 1000) + 5_000,
    )
