"""Unit tests of probing and decoding with OpenCV, on small clips OpenCV writes itself."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from detectflow.jobs.errors import DetectflowError
from detectflow.video.container import sniff_container
from detectflow.video.probe import probe_bytes, probe_path, read_frames

_FOURCC = {"avi": "MJPG", "webm": "VP90", "mkv": "MJPG", "mp4": "mp4v"}


def write_clip(path: Path, frames: int, fps: float = 10.0, size=(64, 48)) -> Path:
    """A clip whose frame i is filled with grey level 20 * i (modulo 256)."""
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*_FOURCC[path.suffix[1:]]), fps, size)
    for i in range(frames):
        writer.write(np.full((size[1], size[0], 3), 20 * i % 256, np.uint8))
    writer.release()
    return path


@pytest.mark.parametrize("ext", sorted(_FOURCC))
def test_probe_reads_the_stream_of_each_container(tmp_path, ext):
    path = write_clip(tmp_path / f"clip.{ext}", 12)
    info = probe_path(path)
    assert (info.fps, info.frame_count, info.width, info.height) == (10.0, 12, 64, 48)
    assert info.duration_ms == 1200.0
    assert sniff_container(path.read_bytes()) == ext


@pytest.mark.parametrize("ext", sorted(_FOURCC))
def test_probe_refuses_a_clip_without_frames(tmp_path, ext):
    path = write_clip(tmp_path / f"empty.{ext}", 0)
    with pytest.raises(DetectflowError) as err:
        probe_path(path)
    assert err.value.code == "invalid_video"


def test_probe_refuses_bytes_that_are_no_video():
    with pytest.raises(DetectflowError) as err:
        probe_bytes(b"\x00\x00\x00\x20ftypisom" + b"\x00" * 500)
    assert err.value.code == "invalid_video"


def test_read_frames_seeks_and_reads_the_wanted_frames(tmp_path):
    path = write_clip(tmp_path / "clip.avi", 12)
    got = list(read_frames(path, [3, 7, 8]))
    assert [i for i, _ in got] == [3, 7, 8]
    assert [round(f.mean() / 20) for _, f in got] == [3, 7, 8]  # MJPEG shifts grey levels by a unit or two


def test_read_frames_reports_frames_past_the_end_as_missing(tmp_path):
    path = write_clip(tmp_path / "clip.avi", 5)
    got = dict(read_frames(path, [3, 4, 9, 10]))
    assert got[3] is not None and got[4] is not None
    assert got[9] is None and got[10] is None
