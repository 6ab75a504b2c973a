"""What OpenCV reads from a video file: its stream's fps, frame count, size and duration; and its frames."""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from detectflow.jobs.errors import DetectflowError, ErrorCode

__all__ = ["VideoInfo", "probe_path", "probe_bytes", "temp_video", "read_frames"]


@dataclass(frozen=True, slots=True)
class VideoInfo:
    """The video stream as the container describes it."""

    fps: float
    frame_count: int
    width: int
    height: int

    @property
    def duration_ms(self) -> float:
        """Length of the stream in milliseconds (frame count over fps)."""
        return self.frame_count * 1000.0 / self.fps if self.fps > 0 else 0.0


@contextlib.contextmanager
def temp_video(data: bytes, suffix: str = ".video") -> Iterator[Path]:
    """The bytes as a temporary file (OpenCV's FFmpeg backend reads files, not buffers); removed afterwards."""
    fd, name = tempfile.mkstemp(prefix="detectflow-", suffix=suffix)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        yield Path(name)
    finally:
        with contextlib.suppress(OSError):
            os.unlink(name)


def _open(path: Path) -> cv2.VideoCapture:
    cap = cv2.VideoCapture(str(path), cv2.CAP_FFMPEG)
    if not cap.isOpened():
        cap.release()
        raise DetectflowError(ErrorCode.invalid_video, "The video could not be opened: corrupt, truncated or not a video.")
    return cap


def probe_path(path: Path) -> VideoInfo:
    """Read the stream's properties without decoding past the first frame.

    Raises
    ------
    DetectflowError
        ``invalid_video`` when the file cannot be opened, has no video stream (audio only) or no frame.
    """
    cap = _open(path)
    try:
        info = VideoInfo(
            fps=float(cap.get(cv2.CAP_PROP_FPS) or 0.0),
            frame_count=int(cap.get(cv2.CAP_PROP_FRAME_COUNT) or 0),
            width=int(cap.get(cv2.CAP_PROP_FRAME_WIDTH) or 0),
            height=int(cap.get(cv2.CAP_PROP_FRAME_HEIGHT) or 0),
        )
        if info.width <= 0 or info.height <= 0 or info.fps <= 0:
            raise DetectflowError(ErrorCode.invalid_video, "The file has no video stream.")
        if info.frame_count <= 0 or not cap.grab():
            raise DetectflowError(ErrorCode.invalid_video, "The video has no frames.")
        return info
    finally:
        cap.release()


def probe_bytes(data: bytes) -> VideoInfo:
    """:func:`probe_path` on bytes (through a temporary file)."""
    with temp_video(data) as path:
        return probe_path(path)


def read_frames(path: Path, indices: Iterable[int]) -> Iterator[tuple[int, np.ndarray | None]]:
    """Decode the frames at ``indices`` (ascending): one seek to the first, then sequential reads.

    Yields ``(index, frame)`` for each index; ``frame`` is None where the stream ended early or a
    frame could not be decoded (a truncated file), so the caller decides what a gap means.
    """
    wanted = sorted(set(indices))
    if not wanted:
        return
    cap = _open(path)
    try:
        if wanted[0] > 0:
            cap.set(cv2.CAP_PROP_POS_FRAMES, wanted[0])
        pos = wanted[0]
        for index in wanted:
            ended = False
            while pos < index:  # skip: grab without converting the pixels
                if not cap.grab():
                    ended = True
                    break
                pos += 1
            ok, frame = (False, None) if ended else cap.read()
            pos += 1
            yield index, frame if ok and frame is not None and frame.size else None
    finally:
        cap.release()
