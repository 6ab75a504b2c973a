"""Unit tests of JobService on the in-memory store: idempotency, backpressure, cancel, TTL, listing."""

from __future__ import annotations

import asyncio
from datetime import timedelta

import cv2
import numpy as np
import pytest

from detectflow.blobs import AsyncBlobs, input_name
from detectflow.blobs.memory import MemoryBlobStore
from detectflow.config import Settings, Task
from detectflow.jobs.errors import DetectflowError, ErrorCode
from detectflow.jobs.options import MatchOptions
from detectflow.jobs.records import JobStatus
from detectflow.jobs.service import MAX_RETRY_AFTER, MIN_RETRY_AFTER, JobService, retry_after_seconds
from detectflow.jobs.store import JobFilter
from detectflow.jobs.stores.memory import MemoryJobStore, StubEnqueuer


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def _png(seed: int = 0) -> bytes:
    img = np.full((8, 8, 3), seed % 256, np.uint8)
    return cv2.imencode(".png", img)[1].tobytes()


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def store(clock: Clock) -> MemoryJobStore:
    return MemoryJobStore(ttl_seconds=60, clock=clock)


@pytest.fixture
def enqueuer() -> StubEnqueuer:
    return StubEnqueuer()


class Marks:
    """Records what the service marks for expiry (the Redis set's part)."""

    def __init__(self) -> None:
        self.marks: dict[str, float] = {}

    async def mark(self, names, at: float) -> None:
        for name in names:
            self.marks[name] = max(at, self.marks.get(name, at))


def _service(store, enqueuer, blobs: MemoryBlobStore | None = None, expiry=None, live_pool_seconds: float = 0.0,
             **settings) -> JobService:  # fmt: skip
    blobs = AsyncBlobs(blobs or MemoryBlobStore())
    return JobService(store, enqueuer, Settings(webhook_secret="s", **settings), blobs, expiry, live_pool_seconds)


def run(coro):
    return asyncio.run(coro)


def test_service_submit_stores_and_enqueues_one_job(store, enqueuer):
    service = _service(store, enqueuer)
    job, created = run(service.submit(_png(), Task.face, request_id="r1"))
    assert created and job.status is JobStatus.queued and job.request_id == "r1"
    assert store.sent == [("detect.face", job.id)]
    assert run(service.get(job.id)).image_width == 8


def test_service_submit_refuses_a_bad_image_and_sends_nothing(store, enqueuer):
    with pytest.raises(DetectflowError) as err:
        run(_service(store, enqueuer).submit(b"not an image", Task.face))
    assert err.value.code is ErrorCode.unsupported_media_type and store.sent == []


def test_service_idempotency_replays_the_job_and_refuses_another_body(store, enqueuer):
    service = _service(store, enqueuer)
    first, _ = run(service.submit(_png(), Task.face, idempotency_key="k"))
    again, created = run(service.submit(_png(), Task.face, idempotency_key="k"))
    assert (again.id, created) == (first.id, False) and len(store.sent) == 1
    with pytest.raises(DetectflowError) as err:
        run(service.submit(_png(1), Task.face, idempotency_key="k"))
    assert err.value.code is ErrorCode.idempotency_key_reused and err.value.details == {"job_id": first.id}


def test_service_idempotency_key_binds_anew_once_its_job_expired(store, enqueuer, clock):
    service = _service(store, enqueuer)
    first, _ = run(service.submit(_png(), Task.face, idempotency_key="k"))
    store._jobs.pop(first.id)  # the record expired before its key
    second, created = run(service.submit(_png(), Task.face, idempotency_key="k"))
    assert created and second.id != first.id


def test_service_tenants_never_see_each_others_jobs_or_keys(store, enqueuer):
    service = _service(store, enqueuer)
    mine, _ = run(service.submit(_png(), Task.face, tenant="a", idempotency_key="k"))
    theirs, created = run(service.submit(_png(), Task.face, tenant="b", idempotency_key="k"))
    assert created and theirs.id != mine.id  # the same key is another tenant's own
    for call in (service.get, service.cancel, service.annotated_png):
        with pytest.raises(DetectflowError) as err:
            run(call(mine.id, "b"))
        assert err.value.code is ErrorCode.job_not_found and mine.id not in str(err.value.details)
    assert [j.id for j in run(service.list(10, tenant="b")).items] == [theirs.id]
    assert run(service.get(mine.id, "a")).status is JobStatus.queued  # untouched


def test_service_quota_bounds_a_tenants_unfinished_jobs(store, enqueuer):
    service = _service(store, enqueuer)
    first, _ = run(service.submit(_png(), Task.face, tenant="a", max_queued_jobs=1))
    with pytest.raises(DetectflowError) as err:
        run(service.submit(_png(), Task.object, tenant="a", max_queued_jobs=1))
    assert err.value.code is ErrorCode.quota_exceeded and err.value.http_status == 429
    assert "Retry-After" in err.value.headers
    run(service.submit(_png(), Task.face, tenant="b", max_queued_jobs=1))  # another tenant's own quota
    run(service.cancel(first.id, "a"))
    run(service.submit(_png(), Task.face, tenant="a", max_queued_jobs=1))  # room again


def test_service_backpressure_refuses_at_the_limit_with_retry_after(store, enqueuer):
    service = _service(store, enqueuer, api_max_queue_depth=2)
    a, _ = run(service.submit(_png(), Task.face))
    run(service.submit(_png(), Task.face))
    run(service.submit(_png(), Task.object))  # another queue is not full
    with pytest.raises(DetectflowError) as err:
        run(service.submit(_png(), Task.face))
    assert err.value.code is ErrorCode.queue_full and err.value.http_status == 429
    assert MIN_RETRY_AFTER <= int(err.value.headers["Retry-After"]) <= MAX_RETRY_AFTER
    store.mark_running(a.id)
    store.mark_finished(a.id, JobStatus.failed)
    run(service.submit(_png(), Task.face))  # room again


def test_service_cancel_any_unfinished_job(store, enqueuer):
    service = _service(store, enqueuer)
    queued, _ = run(service.submit(_png(), Task.face))
    running, _ = run(service.submit(_png(), Task.face))
    retrying, _ = run(service.submit(_png(), Task.face))
    done, _ = run(service.submit(_png(), Task.face))
    store.mark_running(running.id)
    store.mark_running(retrying.id)
    store.mark_retrying(retrying.id)
    store.mark_running(done.id)
    store.mark_finished(done.id, JobStatus.succeeded)
    for job in (queued, running, retrying):
        assert run(service.cancel(job.id)).status is JobStatus.cancelled
    assert run(service.cancel(queued.id)).status is JobStatus.cancelled  # idempotent
    # a cancelled running job never ends succeeded: the worker's transition is refused
    assert store.mark_finished(running.id, JobStatus.succeeded) == (False, "cancelled")
    with pytest.raises(DetectflowError) as err:
        run(service.cancel(done.id))
    assert err.value.code is ErrorCode.job_not_cancellable and err.value.details == {"status": "succeeded"}
    with pytest.raises(DetectflowError) as err:
        run(service.cancel("nope"))
    assert err.value.code is ErrorCode.job_not_found


def test_service_jobs_expire_a_ttl_after_they_end(store, enqueuer, clock):
    service = _service(store, enqueuer)
    job, _ = run(service.submit(_png(), Task.face))
    clock.now += 1000  # a backlog older than the TTL: unfinished jobs never expire
    assert run(service.get(job.id)).status is JobStatus.queued  # (its input is in the blob store)
    store.mark_running(job.id)
    store.mark_finished(job.id, JobStatus.succeeded)
    clock.now += 59
    assert run(service.get(job.id)).id == job.id
    clock.now += 2
    with pytest.raises(DetectflowError) as err:
        run(service.get(job.id))
    assert err.value.code is ErrorCode.job_not_found


def test_service_keeps_the_input_as_a_content_addressed_blob_expiring_with_its_job(store, enqueuer):
    # Given a service with a blob store and an expiry set
    blobs, marks = MemoryBlobStore(), Marks()
    service = _service(store, enqueuer, blobs, marks, job_ttl_seconds=60)
    # When the same image is submitted twice
    first, _ = run(service.submit(_png(), Task.face))
    second, _ = run(service.submit(_png(), Task.face))
    # Then one blob holds it, named by its SHA-256, and it expires with the later job's record
    name = input_name(first.image_sha256)
    assert blobs.names() == [name] and blobs.get(name) == _png()
    assert marks.marks == {name: second.created_at.timestamp() + 60}


def test_service_annotated_needs_a_succeeded_job(store, enqueuer):
    service = _service(store, enqueuer)
    job, _ = run(service.submit(_png(), Task.face))
    with pytest.raises(DetectflowError) as err:
        run(service.annotated_png(job.id))
    assert err.value.code is ErrorCode.job_not_finished and err.value.http_status == 409


def _succeed(store, job_id):
    from detectflow.jobs.results import DetectionResult, DetectionTimings, ImageSize, ModelRef

    store.mark_running(job_id)
    result = DetectionResult(
        image=ImageSize(width=8, height=8),
        detections=[],
        model=ModelRef(name="m", version="1", sha256="0" * 64, provider="cpu"),
        timings_ms=DetectionTimings(queued=0, inference=0, total=0),
    )
    store.mark_finished(job_id, JobStatus.succeeded, result=result)


def test_service_annotated_png_is_cached_only_below_the_bound(store, enqueuer):
    # Given two succeeded jobs, and a cache bound between a tiny PNG and a noisy 256 x 256 one
    blobs = MemoryBlobStore()
    small, _ = run(_service(store, enqueuer, blobs).submit(_png(), Task.face))
    noisy = np.random.default_rng(0).integers(0, 255, (256, 256, 3), np.uint8)
    big, _ = run(_service(store, enqueuer, blobs).submit(cv2.imencode(".png", noisy)[1].tobytes(), Task.face))
    for job in (small, big):
        _succeed(store, job.id)
    service = _service(store, enqueuer, blobs, api_annotated_cache_max_bytes=10_000)
    # When both annotated images are asked for
    small_png, big_png = run(service.annotated_png(small.id)), run(service.annotated_png(big.id))
    # Then both are served, and only the small one is kept
    assert len(small_png) <= 10_000 < len(big_png)
    assert blobs.get(run(store.annotated(small.id))) == small_png
    assert run(store.annotated(big.id)) is None
    assert run(service.annotated_png(big.id)) == big_png  # rendered again, same bytes


def test_service_lists_newest_first_in_pages(store, enqueuer):
    service = _service(store, enqueuer)
    ids = []
    for i in range(5):
        job, _ = run(service.submit(_png(i), Task.face if i % 2 else Task.object))
        ids.append(job.id)
    seen, cursor = [], None
    while True:
        page = run(service.list(2, cursor))
        assert len(page.items) <= 2
        seen += [j.id for j in page.items]
        if page.next_cursor is None:
            break
        cursor = page.next_cursor
    assert seen == sorted(ids, key=lambda i: next(j for j in store._jobs.values() if j[1].id == i)[1].created_at,
                          reverse=True)  # fmt: skip
    faces = run(service.list(10, where=JobFilter(task="face")))
    assert [j.task for j in faces.items] == [Task.face, Task.face] and faces.next_cursor is None


def test_service_list_filters_by_status_and_creation_time(store, enqueuer):
    service = _service(store, enqueuer)
    old, _ = run(service.submit(_png(), Task.face))
    new, _ = run(service.submit(_png(), Task.face))
    run(service.cancel(new.id))
    cancelled = run(service.list(10, where=JobFilter(status=JobStatus.cancelled)))
    assert [j.id for j in cancelled.items] == [new.id]
    after = run(service.list(10, where=JobFilter(created_after=old.created_at - timedelta(seconds=1))))
    assert {j.id for j in after.items} == {old.id, new.id}


def test_retry_after_seconds_follows_drain_rate():
    # 10 jobs over the limit draining at 2 jobs/s: about 6 s
    assert retry_after_seconds(depth=110, limit=100, drain_per_s=2.0) == 6


def test_retry_after_seconds_is_bounded():
    assert retry_after_seconds(100, 100, 1000.0) == MIN_RETRY_AFTER
    assert retry_after_seconds(10**6, 1, 0.01) == MAX_RETRY_AFTER
    assert retry_after_seconds(5, 1, 0.0) == 30  # nothing drained yet: a fixed guess


def test_service_queued_job_without_workers_says_it_waits_for_capacity(store, enqueuer):
    service = _service(store, enqueuer)
    job, _ = run(service.submit(_png(), Task.face))
    assert run(service.get_with_capacity(job.id)).waiting_for is None  # the pool has a worker
    store.pools["face"] = (0, None)
    seen = run(service.get_with_capacity(job.id))
    assert seen.status is JobStatus.queued and seen.waiting_for.reason == "capacity"
    assert seen.public().model_dump()["waiting_for"]["reason"] == "capacity"


def test_service_pool_seen_live_is_not_read_again_for_a_moment(store, enqueuer):
    import time

    # Given a pool seen with a live worker by one poll
    service = _service(store, enqueuer, live_pool_seconds=0.2)
    job, _ = run(service.submit(_png(), Task.face))
    assert run(service.get_with_capacity(job.id)).waiting_for is None
    # When its last worker goes: polls within live_pool_seconds still take it as live
    store.pools["face"] = (0, None)
    assert run(service.get_with_capacity(job.id)).waiting_for is None
    # Then after that the heartbeats are read again, and the job waits for capacity
    time.sleep(0.25)
    assert run(service.get_with_capacity(job.id)).waiting_for.reason == "capacity"


def test_service_capacity_of_a_recognition_kind_is_its_pools(store, enqueuer):
    # workers beat under their pool's name: a match job waits only when the recognition pool has none
    service = _service(store, enqueuer)
    job, _ = run(service.submit_data(b"\0" * 512, Task.match, options=MatchOptions(gallery_id="g", dimension=128)))
    store.pools["match"] = (0, None)  # no pool is named after the task
    assert run(service.get_with_capacity(job.id)).waiting_for is None
    store.pools["recognition"] = (0, None)
    assert run(service.get_with_capacity(job.id)).waiting_for.reason == "capacity"


def test_service_job_held_past_the_capacity_bound_fails_no_capacity(store, enqueuer):
    import time

    service = _service(store, enqueuer, job_capacity_wait_seconds=30)
    job, _ = run(service.submit(_png(), Task.face))
    store.pools["face"] = (0, time.time() - 3600)
    assert run(service.get_with_capacity(job.id)).status is JobStatus.queued  # the job itself waited < 30 s
    store._jobs[job.id] = (store._jobs[job.id][0], job.model_copy(update={"created_at": job.created_at.replace(year=2020)}))
    failed = run(service.get_with_capacity(job.id))
    assert failed.status is JobStatus.failed and failed.error.code is ErrorCode.no_capacity


def test_service_identical_job_is_answered_from_the_cache_within_the_tenant(store, enqueuer):
    # Given a tenant's job that succeeded
    service = _service(store, enqueuer)
    first, _ = run(service.submit(_png(), Task.face, tenant="a"))
    _succeed(store, first.id)
    sent = len(store.sent)
    # When the tenant submits the same image again
    again, created = run(service.submit(_png(), Task.face, tenant="a"))
    # Then a new job is succeeded at once with the earlier result, and nothing is queued
    assert created and again.id != first.id and again.cached and again.status is JobStatus.succeeded
    assert again.result == run(service.get(first.id, "a")).result and len(store.sent) == sent
    assert run(service.get(again.id, "a")).cached
    # while another tenant, another task, `cache=False` and a job with a webhook all run
    for kw, task in (({"tenant": "b"}, Task.face), ({"tenant": "a"}, Task.object), ({"tenant": "a", "cache": False}, Task.face),
                     ({"tenant": "a", "webhook_url": "https://93.184.215.14/hook"}, Task.face)):  # fmt: skip
        job, _ = run(service.submit(_png(), task, **kw))
        assert not job.cached and job.status is JobStatus.queued, kw


def test_service_cache_is_off_with_a_zero_ttl_and_unfilled_by_cache_false(store, enqueuer):
    service = _service(store, enqueuer)
    opted_out, _ = run(service.submit(_png(), Task.face, cache=False))
    _succeed(store, opted_out.id)
    assert not run(service.submit(_png(), Task.face))[0].cached  # the opted-out job did not fill it
    on, _ = run(service.submit(_png(1), Task.face))
    _succeed(store, on.id)
    assert not run(_service(store, enqueuer, result_cache_ttl_seconds=0).submit(_png(1), Task.face))[0].cached
