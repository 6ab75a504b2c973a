"""Unit tests of frame sampling and segment planning (pure)."""

from __future__ import annotations

import pytest

from detectflow.video.plan import plan_segments, sample_indices, timestamp_ms


def test_sample_indices_takes_one_frame_every_fifth_of_a_second_by_default():
    # Given the carphone clip's stream: 120 frames at 29.97 fps (4.004 s)
    indices = sample_indices(30000 / 1001, 120)
    # Then 5 frames a second are sampled, about 6 frames apart, the first at 0
    assert len(indices) == 21
    assert indices[:4] == [0, 5, 11, 17]
    assert all(b - a in (5, 6) for a, b in zip(indices, indices[1:]))


def test_sample_indices_takes_every_frame_at_or_above_the_stream_rate():
    assert sample_indices(25.0, 10, sample_fps=25) == list(range(10))
    assert sample_indices(25.0, 10, sample_fps=60) == list(range(10))


def test_sample_indices_honours_the_window_and_the_cap():
    # 25 fps: 1000 ms is frame 25, 2000 ms frame 50 (exclusive)
    assert sample_indices(25.0, 250, sample_fps=5, start_ms=1000, end_ms=2000) == [25, 30, 35, 40, 45]
    assert sample_indices(25.0, 250, sample_fps=5, max_frames=3) == [0, 5, 10]
    assert sample_indices(25.0, 250, sample_fps=5, start_ms=20_000) == []


@pytest.mark.parametrize("fps, count, sample", [(0, 10, 5), (25, 0, 5), (25, 10, 0)])
def test_sample_indices_is_empty_for_an_empty_stream(fps, count, sample):
    assert sample_indices(fps, count, sample) == []


def test_plan_segments_splits_frames_evenly_in_order():
    segments = plan_segments(list(range(0, 100, 5)), frames_per_segment=6, max_segments=10)
    # 20 frames at 6 a segment: 4 segments of 5
    assert [len(s.frames) for s in segments] == [5, 5, 5, 5]
    assert [s.index for s in segments] == [0, 1, 2, 3]
    assert [f for s in segments for f in s.frames] == list(range(0, 100, 5))


def test_plan_segments_caps_the_count_with_longer_segments():
    segments = plan_segments(list(range(1000)), frames_per_segment=10, max_segments=7)
    assert len(segments) == 7
    assert {len(s.frames) for s in segments} <= {142, 143}


def test_plan_segments_of_no_frames_is_empty():
    assert plan_segments([], 10, 10) == []


def test_timestamp_ms_is_the_presentation_time():
    assert timestamp_ms(5, 25.0) == 200.0
    assert timestamp_ms(30, 30000 / 1001) == 1001.0
