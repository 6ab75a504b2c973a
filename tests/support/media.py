"""Test photos that ship inside pinned registry packages, fetched at test time into the cache (never committed)."""

from __future__ import annotations

import tarfile
from pathlib import Path

import cv2
import numpy as np

from detectflow.config import DEFAULT_CACHE_DIR
from detectflow.models.sources import FACE_RECOGNITION_SDIST, fetch

__all__ = ["FACE_RECOGNITION_SDIST", "MEDIA_DIR", "face_photo", "face_photo_path", "FACE_PHOTOS"]

#: Where fetched test packages and the files taken out of them are kept.
MEDIA_DIR = DEFAULT_CACHE_DIR / "test-media"

#: The photos are White House photos with usage notices: fetched (sdist pinned in detectflow.models.sources),
#: not committed.
_PREFIX = "face_recognition-1.3.0/tests/test_images/"

#: Photo name -> who is in it (one face each).
FACE_PHOTOS = {
    "obama": "obama",
    "obama2": "obama",
    "obama3": "obama",
    "obama_partial_face": "obama",
    "obama_partial_face2": "obama",
    "biden": "biden",
    "32bit": "obama",  # obama2 again, saved as an RGBA PNG
}
_FILES = {name: f"{name}.png" if name == "32bit" else f"{name}.jpg" for name in FACE_PHOTOS}


def face_photo_path(name: str) -> Path:
    """Path of a photo from face_recognition's tests/test_images (fetching the sdist on first use).

    Parameters
    ----------
    name
        ``obama``, ``obama2``, ``obama3``, ``obama_partial_face``, ``obama_partial_face2``,
        ``biden`` or ``32bit``.
    """
    dest = MEDIA_DIR / "face_recognition-1.3.0"
    path = dest / _FILES[name]
    if not path.is_file():
        sdist = fetch(FACE_RECOGNITION_SDIST, MEDIA_DIR)  # pip download --no-binary, sha256-checked
        dest.mkdir(parents=True, exist_ok=True)
        with tarfile.open(sdist, "r:gz") as tf:
            for member in tf.getmembers():
                if member.isfile() and member.name.startswith(_PREFIX) and "/" not in member.name[len(_PREFIX):]:
                    data = tf.extractfile(member).read()
                    tmp = dest / (member.name[len(_PREFIX):] + ".tmp")
                    tmp.write_bytes(data)
                    tmp.replace(dest / member.name[len(_PREFIX):])
    return path


def face_photo(name: str) -> np.ndarray:
    """Decoded BGR uint8 array of a face_recognition test photo."""
    img = cv2.imread(str(face_photo_path(name)), cv2.IMREAD_COLOR)
    assert img is not None, name
    return img
