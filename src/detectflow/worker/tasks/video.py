"""Video jobs: split a video into segments (one message each), run a segment, merge the last one's result."""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections import OrderedDict
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from detectflow.jobs.errors import DetectflowError, ErrorCode
from detectflow.jobs.records import utcnow
from detectflow.jobs.results import ModelRef
from detectflow.video import storage
from detectflow.video.inspect import inspect_video
from detectflow.video.models import VideoInfoOut, VideoOptions, VideoResult, VideoTimings
from detectflow.video.plan import plan_segments, timestamp_ms
from detectflow.video.probe import read_frames, temp_video
from detectflow.video.tracks import stitch_segments, summarize_labels, summarize_tracks, track_segment
from detectflow.worker.tasks.base import Outcome

if TYPE_CHECKING:
    from detectflow.jobs.records import JobRecord
    from detectflow.worker.context import WorkerContext

__all__ = ["run_video", "run_segment", "merge_segments"]

log = logging.getLogger("detectflow.worker")


def run_video(ctx: WorkerContext, job: JobRecord, data: bytes) -> Outcome:
    """Plan a video job and put one message per segment on the task's queue (the job stays running).

    The stream is probed again here (the container the API read may lie). A redelivered split
    writes the same plan and sends the segments again: a segment recorded twice counts once.
    """
    s = ctx.settings
    options = job.video_options or VideoOptions()
    header = inspect_video(data, options, s)
    segments = plan_segments(header.indices, s.video_segment_frames, s.video_max_segments)
    info = header.info
    plan = {
        "fps": info.fps,
        "frame_count": info.frame_count,
        "width": info.width,
        "height": info.height,
        "track": options.track,
        "sample_fps": options.sample_fps,
        "segments": [list(seg.frames) for seg in segments],
    }
    storage.save_plan(ctx.store.client, ctx.store.keys, job.id, plan, s.job_ttl_seconds)
    if ctx.segment_actor is None:  # pragma: no cover - main.py declares it
        raise RuntimeError("the segment actor is not declared")
    for seg in segments:
        ctx.segment_actor.send(job.id, seg.index)
    return Outcome(None, 0.0, f"split into {len(segments)} segments of {len(header.indices)} frames")


#: Videos of recent jobs kept on disk by each worker process (files).
DEFAULT_KEPT_VIDEOS = 2


class _VideoFiles:
    """The videos of the last few jobs this process ran segments of, as temporary files.

    A worker usually runs several segments of one job in a row: the video is read from the store
    and written to disk once per process instead of once per segment. A file is removed when it
    is evicted and no thread is reading it.
    """

    def __init__(self, keep: int = DEFAULT_KEPT_VIDEOS) -> None:
        self.keep = keep
        self._lock = threading.Lock()
        self._files: OrderedDict[str, list] = OrderedDict()  # job id -> [path, readers, exit]

    @contextlib.contextmanager
    def open(self, job_id: str, load) -> Iterator[Path]:
        with self._lock:
            entry = self._files.get(job_id)
            if entry is not None:
                self._files.move_to_end(job_id)
                entry[1] += 1
        if entry is None:
            data = load()
            if data is None:
                raise DetectflowError(ErrorCode.image_expired, "The job's video expired before it was processed.")
            cm = temp_video(data)
            fresh = [cm.__enter__(), 1, cm]
            with self._lock:
                entry = self._files.setdefault(job_id, fresh)
                if entry is not fresh:  # another thread wrote it meanwhile
                    entry[1] += 1
                    cm.__exit__(None, None, None)
                self._evict()
        try:
            yield entry[0]
        finally:
            with self._lock:
                entry[1] -= 1
                self._evict()

    def _evict(self) -> None:
        for job_id in list(self._files)[: max(0, len(self._files) - self.keep)]:
            path, readers, cm = self._files[job_id]
            if readers == 0:
                del self._files[job_id]
                cm.__exit__(None, None, None)


_videos = _VideoFiles()


def _detect_segment(ctx: WorkerContext, job_id: str, frames: list[int], fps: float) -> dict[str, Any]:
    detector = ctx.require_detector()
    out, decode_s, inference_s, missing = [], 0.0, 0.0, 0
    # frames go through the model max_batch at a time (one run per chunk where the detector batches)
    chunk = max(1, getattr(detector, "max_batch", 1))
    pending: list[tuple[int, Any]] = []

    def flush() -> float:
        t = time.perf_counter()
        images = [im for _, im in pending]
        found = detector.detect_batch(images) if len(images) > 1 else [detector.detect(images[0])]
        for (i, _), dets in zip(pending, found):
            out.append({"index": i, "timestamp_ms": timestamp_ms(i, fps), "detections": [d.to_dict() for d in dets]})
        pending.clear()
        return time.perf_counter() - t

    with _videos.open(job_id, lambda: storage.video_bytes(ctx.store.client, ctx.store.keys, job_id)) as path:
        t0 = time.perf_counter()
        for index, image in read_frames(path, frames):
            decode_s += time.perf_counter() - t0
            if image is None:
                missing += 1
            else:
                pending.append((index, image))
                if len(pending) >= chunk:
                    inference_s += flush()
            t0 = time.perf_counter()
        if pending:
            inference_s += flush()
    if not out:
        raise DetectflowError(
            ErrorCode.invalid_video, "No frame of this part of the video could be decoded: it is corrupt or truncated."
        )
    return {"frames": out, "decode_s": decode_s, "inference_s": inference_s, "missing": missing}


def run_segment(ctx: WorkerContext, job_id: str, index: int) -> Outcome | None:
    """Detect (and track) one segment's frames, record it, and merge the job when it is the last to finish.

    Returns
    -------
    Outcome or None
        The merged result when this segment completed the job; None otherwise.
    """
    s = ctx.settings
    plan = storage.load_plan(ctx.store.client, ctx.store.keys, job_id)
    if plan is None:
        raise DetectflowError(ErrorCode.image_expired, "The job's plan expired before this segment ran.")
    segment = _detect_segment(ctx, job_id, plan["segments"][index], plan["fps"])
    if plan["track"]:
        track_segment(segment["frames"])
    added, done, total = storage.finish_segment(ctx.store.client, ctx.store.keys, job_id, index, segment, s.job_ttl_seconds)
    log.info("segment %d/%d done (%d frames)%s", index + 1, total, len(segment["frames"]), "" if added else " again")
    if done < total:
        return None
    job = ctx.store.get(job_id)
    parts = storage.load_segments(ctx.store.client, ctx.store.keys, job_id, total)
    if job is None or parts is None:
        raise DetectflowError(ErrorCode.image_expired, "The job or its segments expired before the merge.")
    result, frames = merge_segments(job, plan, parts, ModelRef(**ctx.require_detector().info.to_dict()))
    storage.save_frames(ctx.store.client, ctx.store.keys, job_id, frames, s.job_ttl_seconds)
    storage.drop_segments(ctx.store.client, ctx.store.keys, job_id, total)
    inference_s = sum(p["inference_s"] for p in parts)
    return Outcome(result, inference_s, f"{len(frames)} frames, {len(result.tracks)} tracks, {total} segments")


def merge_segments(
    job: JobRecord, plan: dict[str, Any], parts: list[dict[str, Any]], model: ModelRef
) -> tuple[VideoResult, list[dict[str, Any]]]:
    """The job's result and its frames from its finished segments, in order (pure).

    Tracks are stitched across segment boundaries when the job tracks.
    """
    if plan["track"]:
        frames = stitch_segments([p["frames"] for p in parts])
    else:
        frames = [f for p in parts for f in p["frames"]]
    tracks = summarize_tracks(frames) if plan["track"] else []
    now = utcnow()
    started = job.started_at or now
    fps, count = plan["fps"], plan["frame_count"]
    result = VideoResult(
        video=VideoInfoOut(
            duration_ms=round(count * 1000.0 / fps, 3),
            fps=round(fps, 3),
            width=plan["width"],
            height=plan["height"],
            frames_sampled=len(frames),
        ),
        tracks=tracks,
        labels=summarize_labels(frames, tracks),
        segments=len(parts),
        model=model,
        timings_ms=VideoTimings(
            queued=round((started - job.created_at).total_seconds() * 1000, 3),
            inference=round(sum(p["inference_s"] for p in parts) * 1000, 3),
            decode=round(sum(p["decode_s"] for p in parts) * 1000, 3),
            total=round((now - job.created_at).total_seconds() * 1000, 3),
        ),
    )
    return result, frames
