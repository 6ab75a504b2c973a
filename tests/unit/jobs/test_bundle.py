"""Image bundles: several images in one stored input."""

from __future__ import annotations

import pytest

from detectflow.jobs.bundle import is_bundle, pack_images, unpack_images


def test_bundle_round_trip_keeps_order_and_bytes():
    images = [b"\x89PNG one", b"", b"\xff\xd8 two" * 100]
    data = pack_images(images)
    assert is_bundle(data) and unpack_images(data) == images


def test_a_plain_image_is_a_bundle_of_one():
    assert unpack_images(b"\xff\xd8\xff jpeg") == [b"\xff\xd8\xff jpeg"]


def test_a_truncated_bundle_is_refused():
    data = pack_images([b"abc", b"def"])
    with pytest.raises(ValueError):
        unpack_images(data[:-1])
