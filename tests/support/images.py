"""Real photos that ship inside installed wheels (scikit-image, matplotlib): no downloads."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

__all__ = ["image_path", "image_bytes", "image_bgr", "IMAGES"]


def _skimage(name: str) -> Path:
    import skimage.data

    return Path(skimage.data.__file__).parent / name


def _mpl(name: str) -> Path:
    import matplotlib

    return Path(matplotlib.get_data_path()) / "sample_data" / name


IMAGES = {
    "astronaut": lambda: _skimage("astronaut.png"),
    "coffee": lambda: _skimage("coffee.png"),
    "chelsea": lambda: _skimage("chelsea.png"),
    "motorcycle_left": lambda: _skimage("motorcycle_left.png"),
    "rocket": lambda: _skimage("rocket.jpg"),
    "camera": lambda: _skimage("camera.png"),
    "grace_hopper": lambda: _mpl("grace_hopper.jpg"),
}


def image_path(name: str) -> Path:
    """Path of a shipped test photo, e.g. ``image_path("astronaut")``."""
    path = IMAGES[name]()
    if not path.exists():
        raise FileNotFoundError(f"{name}: {path} is not installed (pip install -e '.[test]')")
    return path


def image_bytes(name: str) -> bytes:
    """Encoded file bytes of a shipped photo."""
    return image_path(name).read_bytes()


def image_bgr(name: str) -> np.ndarray:
    """Decoded BGR uint8 array of a shipped photo."""
    img = cv2.imread(str(image_path(name)), cv2.IMREAD_COLOR)
    assert img is not None, name
    return img
