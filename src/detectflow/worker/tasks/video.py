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

from detectflow.config import Task
from detectflow.detectors.base import Detection
from detectflow.galleries.match import match_embeddings
from detectflow.jobs.errors import DetectflowError, ErrorCode
from detectflow.jobs.options import RecognizeOptions, Thresholds
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

__all__ = ["run_video", "run_segment", "merge_segments", "best_face_embedding"]

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
        "progress_every": job.webhook.progress_interval_seconds if job.webhook is not None else None,
    }
    plan.update(_recognition_plan(ctx, job))
    storage.save_plan(ctx.store.client, ctx.store.keys, job.id, plan, s.job_ttl_seconds)
    if ctx.segment_actor is None:  # pragma: no cover - main.py declares it
        raise RuntimeError("the segment actor is not declared")
    for seg in segments:
        ctx.segment_actor.send(job.id, seg.index)
    return Outcome(None, 0.0, f"split into {len(segments)} segments of {len(header.indices)} frames")


def _recognition_plan(ctx: WorkerContext, job: JobRecord) -> dict[str, Any]:
    """What the segments of a recognition job need: the task, and for ``recognize`` the gallery and its thresholds.

    The thresholds are fixed here, once, so every segment decides with the same ones.
    """
    if job.task not in (Task.recognize, Task.embed):
        return {}
    if job.task is Task.embed:
        return {"task": job.task.value, "tenant": job.tenant}
    from detectflow.worker.tasks.recognition import gallery_matrix, thresholds_of

    options = RecognizeOptions.model_validate(job.options or {})
    gallery_matrix(ctx, job.tenant, options.gallery_id)  # gone: gallery_not_found now, not in every segment
    thresholds = thresholds_of(ctx, job.tenant, options.gallery_id, options.thresholds)
    return {"task": job.task.value, "tenant": job.tenant, "gallery_id": options.gallery_id,
            "thresholds": thresholds.model_dump()}  # fmt: skip


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


class _FaceRecognition:
    """Embeds (``embed``) or recognises (``recognize``) a frame's faces, all of them as one batch per frame.

    Each face's detection dict gains ``embedding`` (embed) or ``identity`` (recognize: ``subject_id``,
    ``subject_name``, ``decision``, ``distance``, decided with the plan's thresholds).
    """

    def __init__(self, ctx: WorkerContext, tenant: str, plan: dict[str, Any]) -> None:
        self.embedder = ctx.require_embedder()
        self.task = plan["task"]
        self.matrix = None
        self.thresholds = None
        if self.task == Task.recognize.value:
            from detectflow.worker.tasks.recognition import gallery_matrix

            self.matrix = gallery_matrix(ctx, tenant, plan["gallery_id"])
            self.thresholds = Thresholds(**plan["thresholds"])

    def apply(self, image: Any, found: list[Detection], rows: list[dict[str, Any]]) -> None:
        faces = [(d, row) for d, row in zip(found, rows, strict=True) if d.landmarks is not None]
        if not faces:
            return
        embeddings = self.embedder.embed_faces(image, [d for d, _ in faces])
        if self.matrix is None:
            for (_, row), e in zip(faces, embeddings, strict=True):
                row["embedding"] = [round(float(x), 7) for x in e]
            return
        matches = match_embeddings(self.matrix, embeddings, self.thresholds, 1)
        for (_, row), (m, _) in zip(faces, matches, strict=True):
            row["identity"] = {
                "subject_id": m.subject_id,
                "subject_name": m.subject_name,
                "decision": m.decision,
                "distance": None if m.distance is None else round(float(m.distance), 6),
            }


def _detect_segment(
    ctx: WorkerContext, job_id: str, frames: list[int], fps: float, faces: _FaceRecognition | None = None
) -> dict[str, Any]:
    detector = ctx.require_detector()
    out, decode_s, inference_s, missing = [], 0.0, 0.0, 0
    # frames go through the model max_batch at a time (one run per chunk where the detector batches)
    chunk = max(1, getattr(detector, "max_batch", 1))
    pending: list[tuple[int, Any]] = []

    def flush() -> float:
        t = time.perf_counter()
        images = [im for _, im in pending]
        found = detector.detect_batch(images) if len(images) > 1 else [detector.detect(images[0])]
        for (i, image), dets in zip(pending, found):
            rows = [d.to_dict() for d in dets]
            if faces is not None:
                faces.apply(image, dets, rows)
            out.append({"index": i, "timestamp_ms": timestamp_ms(i, fps), "detections": rows})
        pending.clear()
        return time.perf_counter() - t

    with _videos.open(job_id, lambda: ctx.load(job_id)[1]) as path:
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
    part = {"frames": out, "decode_s": decode_s, "inference_s": inference_s, "missing": missing}
    if faces is not None and faces.matrix is not None:
        part["gallery_version"] = faces.matrix.version
    return part


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
    faces = None
    if plan.get("task") in (Task.embed.value, Task.recognize.value):
        faces = _FaceRecognition(ctx, plan["tenant"], plan)
    segment = _detect_segment(ctx, job_id, plan["segments"][index], plan["fps"], faces)
    if plan["track"]:
        track_segment(segment["frames"])
    added, done, total = storage.finish_segment(ctx.store.client, ctx.store.keys, job_id, index, segment, s.job_ttl_seconds)
    log.info("segment %d/%d done (%d frames)%s", index + 1, total, len(segment["frames"]), "" if added else " again")
    if done < total:
        every = plan.get("progress_every")
        if added and every and ctx.progress_actor is not None:
            if storage.claim_progress(ctx.store.client, ctx.store.keys, job_id, every):
                ctx.progress_actor.send(job_id)
        return None
    job = ctx.store.get(job_id)
    parts = storage.load_segments(ctx.store.client, ctx.store.keys, job_id, total)
    if job is None or parts is None:
        raise DetectflowError(ErrorCode.image_expired, "The job or its segments expired before the merge.")
    embedding_model = ModelRef(**ctx.require_embedder().info.to_dict()) if plan.get("task") else None
    result, frames = merge_segments(
        job, plan, parts, ModelRef(**ctx.require_detector().info.to_dict()), embedding_model
    )
    storage.save_frames(ctx.store.client, ctx.store.keys, job_id, frames, s.job_ttl_seconds)
    storage.drop_segments(ctx.store.client, ctx.store.keys, job_id, total)
    inference_s = sum(p["inference_s"] for p in parts)
    return Outcome(result, inference_s, f"{len(frames)} frames, {len(result.tracks)} tracks, {total} segments")


def merge_segments(
    job: JobRecord,
    plan: dict[str, Any],
    parts: list[dict[str, Any]],
    model: ModelRef,
    embedding_model: ModelRef | None = None,
) -> tuple[VideoResult, list[dict[str, Any]]]:
    """The job's result and its frames from its finished segments, in order (pure).

    Tracks are stitched across segment boundaries when the job tracks; a recognize job's tracks get
    the identity voted over their faces, an embed job's tracks the embedding of their best face
    (the per-face embeddings stay in the frames, paged by ``/frames``).
    """
    if plan["track"]:
        frames = stitch_segments([p["frames"] for p in parts])
    else:
        frames = [f for p in parts for f in p["frames"]]
    tracks = summarize_tracks(frames) if plan["track"] else []
    if plan.get("task") == Task.embed.value:
        for track in tracks:
            track["embedding"] = best_face_embedding(frames, track["track_id"])
    recognize = plan.get("task") == Task.recognize.value
    versions = [p["gallery_version"] for p in parts if p.get("gallery_version") is not None]
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
        embedding_model=embedding_model,
        gallery_id=plan.get("gallery_id") if recognize else None,
        gallery_version=max(versions) if recognize and versions else None,
        thresholds=plan.get("thresholds") if recognize else None,
        timings_ms=VideoTimings(
            queued=round((started - job.created_at).total_seconds() * 1000, 3),
            inference=round(sum(p["inference_s"] for p in parts) * 1000, 3),
            decode=round(sum(p["decode_s"] for p in parts) * 1000, 3),
            total=round((now - job.created_at).total_seconds() * 1000, 3),
        ),
    )
    return result, frames


def best_face_embedding(frames: list[dict[str, Any]], track_id: int) -> list[float] | None:
    """The embedding of a track's highest-scoring face (earliest on a tie), or None if none was embedded (pure).

    The best face's own embedding rather than the mean of the track's: it is the embedding of a
    real face, so its distances to enrolled faces mean what the gallery's thresholds were set for
    (a mean of several embeddings is shorter and sits closer to everything).
    """
    best: tuple[float, dict[str, Any]] | None = None
    for frame in frames:
        for d in frame["detections"]:
            if d.get("track_id") == track_id and d.get("embedding") is not None:
                if best is None or d["score"] > best[0]:
                    best = (d["score"], d)
    return None if best is None else best[1]["embedding"]
