"""Unit tests of upload inspection (pure: bytes in, header or error out)."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from detectflow.jobs.images import decode_image, inspect_image, sniff_format
from detectflow.jobs.errors import DetectflowError


def _encode(ext: str, shape=(48, 64, 3)) -> bytes:
    pixels = np.random.default_rng(0).integers(0, 255, shape, np.uint8)
    ok, buf = cv2.imencode(ext, pixels)
    assert ok
    return buf.tobytes()


@pytest.mark.parametrize("ext, fmt", [(".jpg", "JPEG"), (".png", "PNG"), (".webp", "WEBP"), (".bmp", "BMP"), (".tiff", "TIFF")])
def test_inspect_image_reads_format_and_size_from_header(ext, fmt):
    header = inspect_image(_encode(ext), max_pixels=10_000)
    assert (header.format, header.width, header.height) == (fmt, 64, 48)
    assert sniff_format(_encode(ext)) == fmt


@pytest.mark.parametrize("ext", [".jpg", ".png", ".webp", ".bmp"])
def test_inspect_image_refuses_truncated_files(ext):
    data = _encode(ext, (200, 200, 3))
    with pytest.raises(DetectflowError) as err:
        inspect_image(data[: len(data) - 40], max_pixels=10**6)
    assert err.value.code == "invalid_image"


def test_inspect_image_refuses_pixel_bombs_before_decoding():
    with pytest.raises(DetectflowError) as err:
        inspect_image(_encode(".png", (100, 100, 3)), max_pixels=9_999)
    assert err.value.code == "image_too_large" and err.value.http_status == 413


@pytest.mark.parametrize("data", [b"GIF89a" + b"\0" * 40, b"%PDF-1.7 ...", b"hello"], ids=["gif", "pdf", "text"])
def test_inspect_image_refuses_other_formats_by_magic_bytes(data):
    with pytest.raises(DetectflowError) as err:
        inspect_image(data, max_pixels=10**6)
    assert err.value.code == "unsupported_media_type" and err.value.http_status == 415


def test_inspect_image_reports_corrupt_header_as_invalid_image():
    with pytest.raises(DetectflowError) as err:
        inspect_image(b"\x89PNG\r\n\x1a\n" + b"\0" * 30, max_pixels=10**6)
    assert err.value.code == "invalid_image"


def test_inspect_image_refuses_empty_upload():
    with pytest.raises(DetectflowError) as err:
        inspect_image(b"", max_pixels=10)
    assert err.value.code == "invalid_image"


def test_decode_image_gives_bgr_uint8_even_for_grayscale():
    image = decode_image(_encode(".png", (10, 12)))
    assert image.shape == (10, 12, 3) and image.dtype == np.uint8


def test_decode_image_refuses_garbage():
    with pytest.raises(DetectflowError):
        decode_image(b"\xff\xd8\xff" + b"\0" * 100)
