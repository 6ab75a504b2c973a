"""Batched runs give the detections of single runs, on the real models (direct and through the batcher)."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest

from detectflow.detectors.batching import MicroBatcher
from tests.support.images import image_bgr

PHOTOS = ["astronaut", "coffee", "chelsea", "rocket"]


def _same(a, b) -> None:
    assert [d.label for d in a] == [d.label for d in b]
    for x, y in zip(a, b):
        assert x.score == pytest.approx(y.score, abs=1e-4)
        np.testing.assert_allclose(
            [x.box.x, x.box.y, x.box.width, x.box.height], [y.box.x, y.box.y, y.box.width, y.box.height], atol=0.05
        )


@pytest.mark.parametrize("which", ["face_detector", "object_detector"])
def test_detect_batch_equals_detect_per_image(which, request):
    detector = request.getfixturevalue(which)
    images = [image_bgr(name) for name in PHOTOS]
    for single, batched in zip([detector.detect(im) for im in images], detector.detect_batch(images)):
        _same(single, batched)


@pytest.mark.parametrize("which", ["face_detector", "object_detector"])
def test_batcher_serves_concurrent_jobs_with_their_own_detections(which, request):
    detector = request.getfixturevalue(which)
    images = [image_bgr(name) for name in PHOTOS] * 2
    expected = [detector.detect(im) for im in images]
    batcher = MicroBatcher(detector.infer, max_batch=4, max_delay_ms=50)
    detector.run_one = batcher
    try:
        with ThreadPoolExecutor(len(images)) as pool:
            got = list(pool.map(detector.detect, images))
    finally:
        detector.run_one = detector.infer
        batcher.close()
    for e, g in zip(expected, got):
        _same(e, g)
    assert max(batcher.batch_sizes) > 1  # the jobs really shared runs
