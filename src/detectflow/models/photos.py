"""The fixed photo set of the int8 build: sample photos read from pinned packages, and face mosaics."""

from __future__ import annotations

import tarfile
import zipfile
from pathlib import Path

import cv2
import numpy as np

from detectflow.models import sources

__all__ = [
    "CALIBRATION_PHOTOS",
    "FACE_PHOTOS",
    "GOLDEN_PHOTOS",
    "MOSAIC_HEIGHTS",
    "calibration_images",
    "evaluation_images",
    "load_photos",
    "mosaic",
]

#: Photos calibrated on (activation ranges). The face_recognition photos, the other sample
#: images and every evaluation mosaic are held out: they are only in the accuracy report.
CALIBRATION_PHOTOS = (
    "astronaut", "camera", "chelsea", "coffee", "motorcycle_left", "rocket",
    "brick", "coins", "page", "hubble_deep_field", "grace_hopper",
)
#: The photos that tests/data/golden names (the accuracy report lists them first).
GOLDEN_PHOTOS = ("astronaut", "camera", "chelsea", "coffee", "grace_hopper", "motorcycle_left", "rocket")
#: One-face photos the mosaics are made of.
FACE_PHOTOS = (
    "astronaut", "grace_hopper", "camera", "fr_obama", "fr_biden", "fr_obama2", "fr_obama3", "fr_obama_partial_face",
)
#: Piece heights of the evaluation mosaics, pixels (faces from about 20 to 250 px high).
MOSAIC_HEIGHTS = (96, 160, 256, 400, 640)
#: Piece heights of the two calibration mosaics (sample-package faces only).
_CALIBRATION_MOSAIC_HEIGHTS = (128, 320)
_IMAGE_SUFFIXES = (".png", ".jpg")


def _decode(data: bytes, name: str) -> np.ndarray:
    img = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
    if img is None:  # pragma: no cover - a pinned file that OpenCV cannot read
        raise sources.SourceError(f"{name}: OpenCV cannot decode it")
    return img


def load_photos(download_dir: Path = sources.DEFAULT_DOWNLOAD_DIR) -> dict[str, np.ndarray]:
    """Every sample photo of the pinned scikit-image and matplotlib wheels and the face_recognition sdist.

    Names are the file stems (``astronaut``, ``grace_hopper``), with ``fr_`` before the
    face_recognition test images (``fr_obama``). Images are BGR uint8 (alpha dropped, gray expanded),
    in sorted name order.

    Raises
    ------
    detectflow.models.sources.SourceError
        When a package cannot be fetched or does not match its pinned sha256.
    """
    photos: dict[str, np.ndarray] = {}
    with zipfile.ZipFile(sources.fetch(sources.SKIMAGE_WHEEL, download_dir)) as zf:
        for member in zf.namelist():
            p = Path(member)
            if p.parent.as_posix() == "skimage/data" and p.suffix in _IMAGE_SUFFIXES:
                photos[p.stem] = _decode(zf.read(member), member)
    with zipfile.ZipFile(sources.fetch(sources.MATPLOTLIB_WHEEL, download_dir)) as zf:
        for member in zf.namelist():
            p = Path(member)
            if p.parent.as_posix() == "matplotlib/mpl-data/sample_data" and p.suffix in _IMAGE_SUFFIXES:
                photos[p.stem] = _decode(zf.read(member), member)
    with tarfile.open(sources.fetch(sources.FACE_RECOGNITION_SDIST, download_dir), "r:gz") as tf:
        for member in tf.getmembers():
            p = Path(member.name)
            if p.parent.name == "test_images" and p.suffix in _IMAGE_SUFFIXES:
                photos["fr_" + p.stem] = _decode(tf.extractfile(member).read(), member.name)
    missing = set(CALIBRATION_PHOTOS + FACE_PHOTOS) - set(photos)
    if missing:
        raise sources.SourceError(f"photos missing from the pinned packages: {sorted(missing)}")
    return dict(sorted(photos.items()))


def mosaic(pieces: list[np.ndarray], height: int, canvas: tuple[int, int] = (1024, 1024),
           background: int = 128) -> np.ndarray:
    """``pieces`` resized to ``height`` pixels (aspect kept, INTER_AREA), packed row by row on a gray canvas.

    Every second piece is mirrored. Pieces that no longer fit are left out (at least one is always
    placed), and the canvas is cropped to what is used. The default canvas keeps the mosaic within
    RetinaFace's 1024 px cap, so the faces reach the network at the size they were given.

    Parameters
    ----------
    pieces
        BGR uint8 images.
    height
        Height of every piece, pixels.
    canvas
        Largest (height, width) of the mosaic.
    background
        Gray level of the canvas.
    """
    ch, cw = canvas
    out = np.full((max(ch, height), cw, 3), background, np.uint8)
    x = y = used_w = used_h = 0
    for i, img in enumerate(pieces):
        w = max(1, round(img.shape[1] * height / img.shape[0]))
        if x and x + w > cw:
            x, y = 0, y + height
        if y and y + height > ch:
            break
        piece = cv2.resize(img, (w, height), interpolation=cv2.INTER_AREA)[:, : cw - x]
        out[y : y + height, x : x + piece.shape[1]] = piece[:, ::-1] if i % 2 else piece
        x += piece.shape[1]
        used_w, used_h = max(used_w, x), y + height
    return np.ascontiguousarray(out[:used_h, :used_w])


def calibration_images(photos: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """The calibration set: CALIBRATION_PHOTOS and two mosaics of the sample-package faces."""
    out = {n: photos[n] for n in CALIBRATION_PHOTOS}
    faces = [photos[n] for n in FACE_PHOTOS if not n.startswith("fr_")]
    for h in _CALIBRATION_MOSAIC_HEIGHTS:
        out[f"calibration_mosaic_{h}"] = mosaic(faces, h)
    return out


def evaluation_images(photos: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """The accuracy report's set: the golden photos first, every other photo, then a face mosaic per scale."""
    out = {n: photos[n] for n in GOLDEN_PHOTOS}
    out.update({n: img for n, img in photos.items() if n not in out})
    faces = [photos[n] for n in FACE_PHOTOS]
    for h in MOSAIC_HEIGHTS:
        out[f"face_mosaic_{h}"] = mosaic(faces, h)
    return out
