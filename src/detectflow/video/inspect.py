"""Checks on an uploaded video: its container by magic bytes, its stream by probing, the limits (at submit and at decode)."""

from __future__ import annotations

from dataclasses import dataclass

from detectflow.config import Settings
from detectflow.jobs.errors import DetectflowError, ErrorCode
from detectflow.video.container import CONTAINER_MEDIA_TYPES, sniff_container
from detectflow.video.models import VideoOptions
from detectflow.video.plan import sample_indices
from detectflow.video.probe import VideoInfo, probe_bytes

__all__ = ["VideoHeader", "check_video", "inspect_video"]


@dataclass(frozen=True, slots=True)
class VideoHeader:
    """What the checks learnt of a video: its container, its stream and the frames the job samples."""

    container: str
    media_type: str
    info: VideoInfo
    indices: list[int]


def check_video(info: VideoInfo, options: VideoOptions, settings: Settings) -> list[int]:
    """Apply the limits to a probed stream and return the frame indices the job samples (pure).

    Raises
    ------
    DetectflowError
        ``video_too_large`` (frame above ``video_max_pixels``), ``video_too_long`` (stream above
        ``video_max_duration_seconds`` or more than ``video_max_frames`` sampled frames),
        ``validation_error`` (``sample_fps`` above ``video_max_sample_fps``) or ``invalid_video``
        (no frame in the requested window).
    """
    if info.width * info.height > settings.video_max_pixels:
        raise DetectflowError(
            ErrorCode.video_too_large,
            f"The video is {info.width}x{info.height}; frames of at most {settings.video_max_pixels} pixels are accepted.",
            {"width": info.width, "height": info.height, "max_pixels": settings.video_max_pixels},
        )
    limit_s = settings.video_max_duration_seconds
    if info.duration_ms > limit_s * 1000:
        raise DetectflowError(
            ErrorCode.video_too_long,
            f"The video lasts {info.duration_ms / 1000:.1f} s; at most {limit_s:g} s are accepted.",
            {"duration_ms": round(info.duration_ms, 3), "max_duration_seconds": limit_s},
        )
    if options.sample_fps > settings.video_max_sample_fps:
        raise DetectflowError(
            ErrorCode.validation_error,
            f"sample_fps may be at most {settings.video_max_sample_fps:g}.",
            {"field": "sample_fps", "max_sample_fps": settings.video_max_sample_fps},
        )
    indices = sample_indices(
        info.fps, info.frame_count, options.sample_fps, options.max_frames, options.start_ms, options.end_ms
    )
    if not indices:
        raise DetectflowError(ErrorCode.invalid_video, "No frame of the video falls in the requested window.")
    if len(indices) > settings.video_max_frames:
        raise DetectflowError(
            ErrorCode.video_too_long,
            f"The job would sample {len(indices)} frames; at most {settings.video_max_frames} are accepted "
            "(lower sample_fps, set max_frames or a window).",
            {"frames": len(indices), "max_frames": settings.video_max_frames},
        )
    return indices


def inspect_video(data: bytes, options: VideoOptions, settings: Settings) -> VideoHeader:
    """Identify a video upload and check it against the limits (probes the stream with OpenCV: run off the event loop).

    Raises
    ------
    DetectflowError
        ``unsupported_media_type`` when the magic bytes are no video container we accept,
        ``invalid_video`` when the file is corrupt, truncated, audio-only or has no frame, and the
        codes of :func:`check_video`.
    """
    container = sniff_container(data)
    if container is None:
        raise DetectflowError(
            ErrorCode.unsupported_media_type,
            "The file is not a video in a supported container.",
            {"supported": sorted(CONTAINER_MEDIA_TYPES.values())},
        )
    info = probe_bytes(data)
    return VideoHeader(container, CONTAINER_MEDIA_TYPES[container], info, check_video(info, options, settings))
