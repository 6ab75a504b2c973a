"""Unit tests of upload inspection (pure: bytes in, header or error out)."""

from __future__ import annotations

import struct
import subprocess
import sys
import zlib

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


def test_decode_image_refuses_more_pixels_than_the_limit_after_decoding():
    # Given an image whose pixel count the API accepted under a larger limit
    data = _encode(".png", (100, 120, 3))
    # When the decoder's own limit is lower
    with pytest.raises(DetectflowError) as err:
        decode_image(data, max_pixels=100 * 120 - 1)
    # Then it fails as image_too_large, not as a worker error
    assert err.value.code == "image_too_large"
    assert err.value.details == {"width": 120, "height": 100, "max_pixels": 11999}
    assert decode_image(data, max_pixels=100 * 120).shape == (100, 120, 3)


def _png_bomb(width: int, height: int) -> bytes:
    """A PNG of width x height black pixels: a few hundred KB that decode to width*height*3 bytes."""

    def chunk(kind: bytes, payload: bytes) -> bytes:
        return struct.pack(">I", len(payload)) + kind + payload + struct.pack(">I", zlib.crc32(kind + payload))

    rows = zlib.compress(b"\x00" * ((width * 3 + 1) * height), 9)
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", rows) + chunk(b"IEND", b"")


_DECODE_IN_CHILD = """
import sys
from detectflow.jobs.errors import DetectflowError
from detectflow.jobs.images import decode_image
data = sys.stdin.buffer.read()
try:
    decode_image(data, max_pixels=1_000_000)
    print("decoded")
except DetectflowError as exc:
    print(exc.code.value)
peak = next(line for line in open("/proc/self/status") if line.startswith("VmHWM:"))  # this exec's own peak
print(int(peak.split()[1]) // 1024)
"""


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads the peak RSS from /proc")
def test_decode_image_bomb_is_refused_before_opencv_allocates_it():
    # Given a 8000 x 8000 PNG (192 MB of pixels in ~200 KB) and a process started as `detectflow worker`
    # starts its workers: OPENCV_IO_MAX_IMAGE_PIXELS set before cv2 is imported
    bomb = _png_bomb(8000, 8000)
    env = {"OPENCV_IO_MAX_IMAGE_PIXELS": "1000000", "PATH": "/usr/bin:/bin"}
    # When it decodes the bomb
    out = subprocess.run(
        [sys.executable, "-c", _DECODE_IN_CHILD], input=bomb, capture_output=True, env=env, check=True, timeout=60
    ).stdout.decode().split()
    # Then OpenCV refused from the header, before allocating the pixels
    assert out[0] == "image_too_large"
    assert int(out[1]) < 150  # peak MB of the whole interpreter, cv2 included; the pixels alone are 192 MB
