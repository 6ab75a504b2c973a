"""Which frames a video job samples and how they are split into segments, one queue message each (pure)."""

from __future__ import annotations

import math
from dataclasses import dataclass

__all__ = ["DEFAULT_SAMPLE_FPS", "Segment", "sample_indices", "plan_segments", "timestamp_ms"]

#: Frames sampled per second of video when the job does not say (frames/s).
DEFAULT_SAMPLE_FPS = 5.0


def timestamp_ms(index: int, fps: float) -> float:
    """Presentation time of frame ``index`` of a stream at ``fps``, in milliseconds (3 decimals)."""
    return round(index * 1000.0 / fps, 3)


def sample_indices(
    fps: float,
    frame_count: int,
    sample_fps: float = DEFAULT_SAMPLE_FPS,
    max_frames: int | None = None,
    start_ms: float = 0.0,
    end_ms: float | None = None,
) -> list[int]:
    """Frame indices to run the model on: one every ``1 / sample_fps`` seconds between start and end.

    Parameters
    ----------
    fps, frame_count
        The stream's frame rate (frames/s) and length (frames).
    sample_fps
        Frames per second of video to sample (frames/s); at or above ``fps`` every frame is taken.
    max_frames
        At most this many frames (the first ones); None for no cap.
    start_ms, end_ms
        The window of the video to sample, in milliseconds (end exclusive; None for the end).

    Returns
    -------
    list of int
        Ascending, distinct frame indices, each below ``frame_count``.
    """
    if fps <= 0 or frame_count <= 0 or sample_fps <= 0:
        return []
    first = math.ceil(start_ms * fps / 1000.0 - 1e-9)
    stop = frame_count if end_ms is None else min(frame_count, math.ceil(end_ms * fps / 1000.0 - 1e-9))
    if sample_fps >= fps:
        indices = list(range(max(first, 0), stop))
    else:
        step = fps / sample_fps  # frames between two samples, fractional
        indices, k = [], 0
        while (index := first + int(math.floor(k * step + 1e-9))) < stop:
            if index >= 0 and (not indices or index > indices[-1]):
                indices.append(index)
            k += 1
    return indices[:max_frames] if max_frames is not None else indices


@dataclass(frozen=True, slots=True)
class Segment:
    """One part of a video job: a run of consecutive sampled frames, processed by one message."""

    index: int
    frames: tuple[int, ...]


def plan_segments(indices: list[int], frames_per_segment: int, max_segments: int) -> list[Segment]:
    """Split the sampled frames into segments of about ``frames_per_segment`` frames each.

    The split depends only on the frames and the two bounds (not on how many workers there are), so
    a job's result is the same whichever workers run its segments. Segments differ in length by at
    most one frame.

    Parameters
    ----------
    indices
        The sampled frame indices, ascending.
    frames_per_segment
        Target number of sampled frames per segment (frames), at least 1.
    max_segments
        Most segments one job is split into; longer videos get longer segments.

    Returns
    -------
    list of Segment
        Consecutive, non-empty segments numbered from 0; empty for no frames.
    """
    if not indices:
        return []
    count = min(max(1, max_segments), math.ceil(len(indices) / max(1, frames_per_segment)))
    size, extra = divmod(len(indices), count)
    segments, at = [], 0
    for i in range(count):
        n = size + (1 if i < extra else 0)
        segments.append(Segment(i, tuple(indices[at : at + n])))
        at += n
    return segments
