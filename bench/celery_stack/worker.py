"""The Celery app and its one task: load the job's image from Redis, detect faces, return the result.

Configured as the seeds configure it: Redis as broker and result backend, ``acks_late`` and a
prefetch multiplier of 1. The model is loaded through detectflow's own ``load_detector``, so the
pre/post-processing and the onnxruntime session are the same as detectflow's worker.

Run with ``celery -A bench.celery_stack.worker worker --pool prefork --concurrency 2``.
"""

from __future__ import annotations

import os
import time

import redis
from celery import Celery

from detectflow.config import Settings, Task
from detectflow.detectors import load_detector
from detectflow.jobs.images import decode_image

__all__ = ["celery_app", "detect_faces", "image_key", "DEFAULT_REDIS_URL", "DEFAULT_TTL_SECONDS", "DEFAULT_CPU_PRECISION"]

#: Broker, result backend and image store.
DEFAULT_REDIS_URL = "redis://127.0.0.1:6379/0"
#: Which of the face model's CPU files the worker loads (``BENCH_CPU_PRECISION``): the seeds have the fp32 one.
DEFAULT_CPU_PRECISION = "fp32"
#: How long an uploaded image and a result are kept, seconds.
DEFAULT_TTL_SECONDS = 3600

REDIS_URL = os.environ.get("BENCH_REDIS_URL", DEFAULT_REDIS_URL)

celery_app = Celery("bench_celery", broker=REDIS_URL, backend=REDIS_URL)
celery_app.conf.update(
    task_acks_late=True,
    worker_prefetch_multiplier=1,
    task_track_started=True,
    task_serializer="json",
    result_serializer="json",
    accept_content=["json"],
    result_expires=DEFAULT_TTL_SECONDS,
    broker_connection_retry_on_startup=True,
)

_detector = None
_redis: redis.Redis | None = None


def image_key(job_id: str) -> str:
    """Redis key of a job's uploaded image."""
    return f"bench:image:{job_id}"


def _state():
    # One session and one connection per worker process, made after the fork.
    global _detector, _redis
    if _detector is None:
        threads = int(os.environ.get("BENCH_INTRA_OP_THREADS", "1"))
        # fp32 by default, as the seeds build it: the model's own file, not detectflow's int8 one
        precision = os.environ.get("BENCH_CPU_PRECISION", DEFAULT_CPU_PRECISION)
        _detector = load_detector(Task.face, Settings(intra_op_threads=threads, device="cpu", cpu_precision=precision))
        _detector.warmup()
        _redis = redis.Redis.from_url(REDIS_URL)
    return _detector, _redis


@celery_app.task(name="bench.detect_faces")
def detect_faces(job_id: str) -> dict:
    """Faces in the job's image, in the same JSON form as detectflow's results."""
    detector, r = _state()
    data = r.get(image_key(job_id))
    if data is None:
        raise LookupError(f"image of job {job_id} expired")
    image = decode_image(data)
    t0 = time.perf_counter()
    detections = detector.detect(image)
    inference_ms = (time.perf_counter() - t0) * 1000
    return {
        "image": {"width": int(image.shape[1]), "height": int(image.shape[0])},
        "detections": [d.to_dict() for d in detections],
        "timings_ms": {"inference": round(inference_ms, 3)},
    }
