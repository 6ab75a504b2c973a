"""Checks on uploaded image bytes: format by magic bytes, pixel count from the header, truncation."""

from __future__ import annotations

import io
import warnings
from dataclasses import dataclass

import cv2
import numpy as np
from PIL import Image, UnidentifiedImageError

from detectflow.jobs.errors import DetectflowError, ErrorCode

__all__ = ["ImageHeader", "inspect_image", "decode_image", "sniff_format", "SUPPORTED_FORMATS"]

#: Formats accepted, as Pillow names them, with the media type reported back.
SUPPORTED_FORMATS = {
    "JPEG": "image/jpeg",
    "PNG": "image/png",
    "WEBP": "image/webp",
    "BMP": "image/bmp",
    "TIFF": "image/tiff",
}

#: Leading bytes of each supported format.
_MAGIC = (
    (b"\xff\xd8\xff", "JPEG"),
    (b"\x89PNG\r\n\x1a\n", "PNG"),
    (b"BM", "BMP"),
    (b"II*\x00", "TIFF"),
    (b"MM\x00*", "TIFF"),
)

Image.MAX_IMAGE_PIXELS = None  # we enforce our own limit, with our own error code


def sniff_format(data: bytes) -> str | None:
    """The supported format the magic bytes announce, or None."""
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "WEBP"
    return next((fmt for magic, fmt in _MAGIC if data.startswith(magic)), None)


@dataclass(frozen=True, slots=True)
class ImageHeader:
    format: str
    media_type: str
    width: int
    height: int


def inspect_image(data: bytes, max_pixels: int) -> ImageHeader:
    """Identify an upload without decoding its pixels.

    Raises
    ------
    DetectflowError
        ``invalid_image`` (empty, corrupt or truncated), ``unsupported_media_type`` (the magic bytes
        are not an image format we decode) or ``image_too_large`` (pixel count above ``max_pixels``).
    """
    if not data:
        raise DetectflowError(ErrorCode.invalid_image, "The uploaded file is empty.")
    sniffed = sniff_format(data)
    if sniffed is None:
        raise DetectflowError(
            ErrorCode.unsupported_media_type,
            "The file is not an image in a supported format.",
            {"supported": sorted(SUPPORTED_FORMATS.values())},
        )
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            img = Image.open(io.BytesIO(data))
            fmt, (width, height) = img.format or "", img.size
    except Exception as exc:  # the magic bytes say image, the header is broken
        reason = "unreadable header" if isinstance(exc, UnidentifiedImageError) else str(exc)
        raise DetectflowError(ErrorCode.invalid_image, f"The {sniffed} file is corrupt: {reason}.") from None
    if fmt != sniffed:
        raise DetectflowError(ErrorCode.invalid_image, f"The file starts like {sniffed} but is not one.")
    if width <= 0 or height <= 0:
        raise DetectflowError(ErrorCode.invalid_image, "The image has no pixels.")
    if width * height > max_pixels:
        raise DetectflowError(
            ErrorCode.image_too_large,
            f"The image is {width}x{height} pixels; at most {max_pixels} pixels are accepted.",
            {"width": width, "height": height, "max_pixels": max_pixels},
        )
    if _is_truncated(fmt, data):
        raise DetectflowError(ErrorCode.invalid_image, f"The {fmt} file is truncated.")
    return ImageHeader(fmt, SUPPORTED_FORMATS[fmt], width, height)


def _is_truncated(fmt: str, data: bytes) -> bool:
    if fmt == "JPEG":
        # EOI cannot occur inside entropy-coded data (0xFF is always stuffed there).
        return data.rfind(b"\xff\xd9") < len(data) - 1024 if len(data) > 1024 else b"\xff\xd9" not in data
    if fmt == "PNG":
        return b"IEND" not in data[-32:]
    if fmt == "WEBP":
        return int.from_bytes(data[4:8], "little") + 8 > len(data)
    if fmt == "BMP":
        return int.from_bytes(data[2:6], "little") > len(data)
    return False


def decode_image(data: bytes, max_pixels: int | None = None) -> np.ndarray:
    """Decode to a BGR uint8 array (EXIF orientation applied), at most ``max_pixels`` of it.

    The API read the pixel count from the header with Pillow; OpenCV's decoders read the header again
    and allocate from what they read, so the count is checked again here: OpenCV itself refuses to
    allocate beyond ``OPENCV_IO_MAX_IMAGE_PIXELS`` (read once, when cv2 is imported: `detectflow worker`
    and `detectflow api` set it to ``DETECTFLOW_API_MAX_IMAGE_PIXELS``), and the decoded shape is
    checked against ``max_pixels`` whatever that variable says.

    Raises
    ------
    DetectflowError
        ``invalid_image`` when OpenCV cannot decode the bytes; ``image_too_large`` when the decoder's
        header or the decoded image exceeds the pixel limit.
    """
    buf = np.frombuffer(data, np.uint8)
    try:
        image = cv2.imdecode(buf, cv2.IMREAD_COLOR) if buf.size else None
    except cv2.error as exc:
        if "CV_IO_MAX_IMAGE_PIXELS" in str(exc):
            raise DetectflowError(
                ErrorCode.image_too_large,
                "The decoder read a pixel count above the limit from the image's header.",
                {"max_pixels": max_pixels} if max_pixels else {},
            ) from None
        raise DetectflowError(ErrorCode.invalid_image, "The image could not be decoded.") from None
    if image is None or image.size == 0:
        raise DetectflowError(ErrorCode.invalid_image, "The image could not be decoded.")
    height, width = image.shape[:2]
    if max_pixels is not None and width * height > max_pixels:
        raise DetectflowError(
            ErrorCode.image_too_large,
            f"The image decodes to {width}x{height} pixels; at most {max_pixels} pixels are accepted.",
            {"width": width, "height": height, "max_pixels": max_pixels},
        )
    return image
