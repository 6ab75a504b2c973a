"""Several images stored as one job input: a small length-prefixed container (pure functions)."""

from __future__ import annotations

import struct

__all__ = ["pack_images", "unpack_images", "is_bundle", "MAGIC"]

#: First bytes of a bundle (no image format starts so).
MAGIC = b"DFIMGS1\n"
_COUNT = struct.Struct("<I")


def pack_images(images: list[bytes]) -> bytes:
    """``images`` as one byte string: MAGIC, a count, each length, then the images back to back."""
    lengths = b"".join(_COUNT.pack(len(i)) for i in images)
    return MAGIC + _COUNT.pack(len(images)) + lengths + b"".join(images)


def is_bundle(data: bytes) -> bool:
    """Whether ``data`` was made by :func:`pack_images`."""
    return data.startswith(MAGIC)


def unpack_images(data: bytes) -> list[bytes]:
    """The images of a bundle (a plain image is a bundle of one).

    Raises
    ------
    ValueError
        For a truncated or inconsistent bundle.
    """
    if not is_bundle(data):
        return [data]
    at = len(MAGIC)
    if len(data) < at + _COUNT.size:
        raise ValueError("truncated bundle")
    (count,) = _COUNT.unpack_from(data, at)
    at += _COUNT.size
    if len(data) < at + count * _COUNT.size:
        raise ValueError("truncated bundle")
    lengths = [_COUNT.unpack_from(data, at + i * _COUNT.size)[0] for i in range(count)]
    at += count * _COUNT.size
    if at + sum(lengths) != len(data):
        raise ValueError("bundle lengths do not add up")
    out = []
    for n in lengths:
        out.append(data[at : at + n])
        at += n
    return out
