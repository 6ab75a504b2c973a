"""Video containers recognised by their magic bytes (MP4/MOV ftyp boxes, Matroska/WebM EBML, AVI RIFF)."""

from __future__ import annotations

__all__ = ["CONTAINER_MEDIA_TYPES", "sniff_container"]

#: Containers accepted, with the media type reported back.
CONTAINER_MEDIA_TYPES = {
    "mp4": "video/mp4",
    "mov": "video/quicktime",
    "mkv": "video/x-matroska",
    "webm": "video/webm",
    "avi": "video/x-msvideo",
}

_EBML = b"\x1a\x45\xdf\xa3"
#: QuickTime files written without an ftyp box start with one of these top-level atoms.
_QT_ATOMS = (b"moov", b"mdat", b"wide", b"free", b"skip")
#: How far into an EBML header the DocType is looked for (bytes; sizes may take up to 8 bytes each).
_EBML_HEADER_BYTES = 256


def sniff_container(data: bytes) -> str | None:
    """The video container the leading bytes announce: ``mp4``, ``mov``, ``mkv``, ``webm``, ``avi`` or None.

    Parameters
    ----------
    data
        The file's bytes (the first 256 are enough).

    Returns
    -------
    str or None
        The container's short name; None when the bytes start like no video container we accept.
    """
    if len(data) >= 12 and data[4:8] == b"ftyp":
        return "mov" if data[8:12] == b"qt  " else "mp4"
    if len(data) >= 8 and data[4:8] in _QT_ATOMS and int.from_bytes(data[:4], "big") >= 8:
        return "mov"
    if data.startswith(_EBML):
        head = data[:_EBML_HEADER_BYTES]
        if b"webm" in head:
            return "webm"
        return "mkv" if b"matroska" in head else None
    if len(data) >= 12 and data[:4] == b"RIFF" and data[8:12] == b"AVI ":
        return "avi"
    return None
