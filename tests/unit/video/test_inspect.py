"""Unit tests of the video limits (pure: a probed stream and the options in, sampled frames or a code out)."""

from __future__ import annotations

import pytest

from detectflow.config import Settings
from detectflow.jobs.errors import DetectflowError
from detectflow.video.inspect import check_video, inspect_video
from detectflow.video.models import VideoOptions
from detectflow.video.probe import VideoInfo
from tests.unit.video.test_probe import write_clip

STREAM = VideoInfo(fps=25.0, frame_count=250, width=640, height=272)


def _code(info: VideoInfo, options: VideoOptions, **settings) -> str:
    with pytest.raises(DetectflowError) as err:
        check_video(info, options, Settings(**settings))
    return err.value.code


def test_check_video_returns_the_sampled_frames():
    assert len(check_video(STREAM, VideoOptions(), Settings())) == 50
    assert check_video(STREAM, VideoOptions(max_frames=2), Settings()) == [0, 5]


def test_check_video_refuses_each_limit_with_its_code():
    assert _code(STREAM, VideoOptions(), video_max_pixels=640 * 271) == "video_too_large"
    assert _code(STREAM, VideoOptions(), video_max_duration_seconds=9.9) == "video_too_long"
    assert _code(STREAM, VideoOptions(), video_max_frames=49) == "video_too_long"
    assert _code(STREAM, VideoOptions(sample_fps=31)) == "validation_error"
    assert _code(STREAM, VideoOptions(start_ms=10_000)) == "invalid_video"


def test_video_options_refuse_an_empty_window():
    with pytest.raises(ValueError):
        VideoOptions(start_ms=500, end_ms=500)


def test_inspect_video_names_the_container_and_refuses_what_is_not_one(tmp_path):
    clip = write_clip(tmp_path / "clip.webm", 12).read_bytes()
    header = inspect_video(clip, VideoOptions(), Settings())
    assert (header.container, header.media_type, header.indices) == ("webm", "video/webm", [0, 2, 4, 6, 8, 10])
    with pytest.raises(DetectflowError) as err:
        inspect_video(b"GIF89a" + b"\x00" * 64, VideoOptions(), Settings())
    assert err.value.code == "unsupported_media_type"
