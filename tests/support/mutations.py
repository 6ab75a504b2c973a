"""Seeded mutations of real image files: bit flips, truncation, header swaps, mismatched containers."""

from __future__ import annotations

import random
import struct
import zlib
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass

__all__ = ["Mutant", "MUTATORS", "mutate", "mutants", "seed_corpus", "DEFAULT_SEED"]

#: The seed of the media fuzzer's cases: case ``i`` of seed ``s`` is the same on every run.
DEFAULT_SEED = 14

#: Longest side of the re-encoded seed photos (pixels): small uploads, quick inference, real content.
DEFAULT_CORPUS_SIDE = 192

#: Leading bytes a header swap puts in front (each a format the API sniffs, or one it does not).
MAGICS = {
    "jpeg": b"\xff\xd8\xff\xe0\x00\x10JFIF\x00\x01\x01\x00\x00\x01\x00\x01\x00\x00",
    "png": b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR",
    "webp": b"RIFF\x00\x00\x00\x00WEBPVP8 ",
    "bmp": b"BM\x00\x00\x00\x00\x00\x00\x00\x006\x00\x00\x00(\x00\x00\x00",
    "tiff": b"II*\x00\x08\x00\x00\x00",
    "tiff-be": b"MM\x00*\x00\x00\x00\x08",
    "gif": b"GIF89a",
    "pdf": b"%PDF-1.7\n",
}

#: File name extensions a case may carry, matching its content or not.
EXTENSIONS = (".jpg", ".jpeg", ".png", ".webp", ".bmp", ".tif", ".gif", "", ".txt")

#: Byte values that break parsers more often than random ones.
INTERESTING = (0x00, 0x01, 0x7F, 0x80, 0xFE, 0xFF)


@dataclass(frozen=True, slots=True)
class Mutant:
    """One fuzz case: the bytes to upload, the name to upload them under, and how they were made."""

    index: int
    source: str
    recipe: tuple[str, ...]
    filename: str
    data: bytes

    def describe(self) -> str:
        """A one-line recipe: enough to make the same bytes again with ``mutate``."""
        return f"case {self.index}: {self.source} -> {' | '.join(self.recipe) or 'unchanged'} as {self.filename!r}"


Mutator = Callable[[bytes, random.Random, Mapping[str, bytes]], tuple[bytes, str]]


def _offset(data: bytes, rng: random.Random) -> int:
    """An offset, half of the time inside the first 64 bytes (where the headers are)."""
    if not data:
        return 0
    return rng.randrange(min(64, len(data))) if rng.random() < 0.5 else rng.randrange(len(data))


def flip_bits(data: bytes, rng: random.Random, corpus: Mapping[str, bytes]) -> tuple[bytes, str]:
    """Flip 1 to 64 random bits."""
    if not data:
        return data, "flip_bits(none)"
    out = bytearray(data)
    n = rng.choice((1, 2, 4, 8, 16, 64))
    for _ in range(n):
        i = _offset(out, rng)
        out[i] ^= 1 << rng.randrange(8)
    return bytes(out), f"flip_bits(n={n})"


def set_bytes(data: bytes, rng: random.Random, corpus: Mapping[str, bytes]) -> tuple[bytes, str]:
    """Overwrite 1 to 16 bytes with values that often break parsers."""
    if not data:
        return data, "set_bytes(none)"
    out = bytearray(data)
    n = rng.randint(1, 16)
    for _ in range(n):
        out[_offset(out, rng)] = rng.choice(INTERESTING)
    return bytes(out), f"set_bytes(n={n})"


def truncate(data: bytes, rng: random.Random, corpus: Mapping[str, bytes]) -> tuple[bytes, str]:
    """Keep a prefix: inside the header, or anywhere."""
    keep = rng.randrange(min(len(data), 128) + 1) if rng.random() < 0.3 else rng.randrange(len(data) + 1)
    return data[:keep], f"truncate(keep={keep})"


def cut_span(data: bytes, rng: random.Random, corpus: Mapping[str, bytes]) -> tuple[bytes, str]:
    """Remove a span from the middle (the end marker stays)."""
    if len(data) < 4:
        return data, "cut_span(none)"
    start = rng.randrange(len(data) - 1)
    end = min(len(data) - 1, start + rng.randint(1, max(1, len(data) // 8)))
    return data[:start] + data[end:], f"cut_span({start}:{end})"


def duplicate_span(data: bytes, rng: random.Random, corpus: Mapping[str, bytes]) -> tuple[bytes, str]:
    """Repeat a span in place (chunks seen twice, lengths that no longer add up)."""
    if len(data) < 4:
        return data, "duplicate_span(none)"
    start = rng.randrange(len(data) - 1)
    end = min(len(data), start + rng.randint(1, 4096))
    return data[:end] + data[start:end] + data[end:], f"duplicate_span({start}:{end})"


def insert_random(data: bytes, rng: random.Random, corpus: Mapping[str, bytes]) -> tuple[bytes, str]:
    """Insert 1 to 256 random bytes."""
    at, n = _offset(data, rng), rng.randint(1, 256)
    return data[:at] + rng.randbytes(n) + data[at:], f"insert_random(at={at}, n={n})"


def header_swap(data: bytes, rng: random.Random, corpus: Mapping[str, bytes]) -> tuple[bytes, str]:
    """Replace the leading bytes with another format's header (a PNG that starts like a JPEG, ...)."""
    name = rng.choice([n for n in sorted(MAGICS) if not data.startswith(MAGICS[n][:4])])
    magic = MAGICS[name]
    return magic + data[len(magic):], f"header_swap({name})"


def header_of_another(data: bytes, rng: random.Random, corpus: Mapping[str, bytes]) -> tuple[bytes, str]:
    """Put the first 16 to 512 bytes of another seed file in front of this one's remainder."""
    other = rng.choice(sorted(corpus))
    n = rng.choice((16, 64, 512))
    return corpus[other][:n] + data[n:], f"header_of_another({other}, n={n})"


def riff_webp_around(data: bytes, rng: random.Random, corpus: Mapping[str, bytes]) -> tuple[bytes, str]:
    """Wrap the bytes in a RIFF/WEBP container (a JPEG inside a WebP header), its length right or wrong."""
    chunk = rng.choice((b"VP8 ", b"VP8L", b"VP8X", b"ALPH"))
    size = len(data) + 12 if rng.random() < 0.5 else rng.choice((0, 1, 0xFFFFFFFF, len(data) // 2))
    body = chunk + struct.pack("<I", len(data)) + data
    return b"RIFF" + struct.pack("<I", size & 0xFFFFFFFF) + b"WEBP" + body, f"riff_webp_around({chunk.decode()})"


def concatenate(data: bytes, rng: random.Random, corpus: Mapping[str, bytes]) -> tuple[bytes, str]:
    """Another seed file appended (two images in one upload)."""
    other = rng.choice(sorted(corpus))
    return data + corpus[other], f"concatenate({other})"


def png_dimensions(data: bytes, rng: random.Random, corpus: Mapping[str, bytes]) -> tuple[bytes, str]:
    """Set a PNG's IHDR width and height (0, 1, huge), with the chunk's CRC recomputed or left stale."""
    at = data.find(b"IHDR")
    if at < 4 or len(data) < at + 21:
        return data, "png_dimensions(no IHDR)"
    width, height = (rng.choice((0, 1, 7, 65535, 0x7FFFFFFF, 0xFFFFFFFF, rng.randint(1, 40000))) for _ in range(2))
    ihdr = bytearray(data[at : at + 17])
    ihdr[4:12] = struct.pack(">II", width, height)
    fix_crc = rng.random() < 0.7
    crc = struct.pack(">I", zlib.crc32(bytes(ihdr))) if fix_crc else data[at + 17 : at + 21]
    out = data[:at] + bytes(ihdr) + crc + data[at + 21 :]
    return out, f"png_dimensions({width}x{height}, crc={'fixed' if fix_crc else 'stale'})"


def jpeg_dimensions(data: bytes, rng: random.Random, corpus: Mapping[str, bytes]) -> tuple[bytes, str]:
    """Set the height and width of a JPEG's start-of-frame marker (0, 1, 65535, ...)."""
    at = next((i for marker in (b"\xff\xc0", b"\xff\xc2", b"\xff\xc1") if (i := data.find(marker)) > 0), -1)
    if at < 0 or len(data) < at + 9:
        return data, "jpeg_dimensions(no SOF)"
    height, width = (rng.choice((0, 1, 8, 16383, 65500, 65535, rng.randint(1, 65535))) for _ in range(2))
    out = data[: at + 5] + struct.pack(">HH", height, width) + data[at + 9 :]
    return out, f"jpeg_dimensions({width}x{height})"


def bmp_dimensions(data: bytes, rng: random.Random, corpus: Mapping[str, bytes]) -> tuple[bytes, str]:
    """Set a BMP's width and height (negative: top-down; huge; zero) and its pixel data offset."""
    if not data.startswith(b"BM") or len(data) < 26:
        return data, "bmp_dimensions(not BMP)"
    width, height = (rng.choice((0, 1, -1, -512, 65535, 0x7FFFFFFF, -0x80000000)) for _ in range(2))
    offset = rng.choice((54, 0, len(data), 0xFFFFFFFF))
    out = data[:10] + struct.pack("<I", offset) + data[14:18] + struct.pack("<ii", width, height) + data[26:]
    return out, f"bmp_dimensions({width}x{height}, offset={offset})"


def empty_or_magic_only(data: bytes, rng: random.Random, corpus: Mapping[str, bytes]) -> tuple[bytes, str]:
    """Nothing, or a format's magic bytes and nothing after them."""
    if rng.random() < 0.2:
        return b"", "empty"
    name = rng.choice(sorted(MAGICS))
    return MAGICS[name][: rng.randint(1, len(MAGICS[name]))], f"magic_only({name})"


#: Every mutation, by name; a case applies one to three of them in turn.
MUTATORS: dict[str, Mutator] = {
    f.__name__: f
    for f in (
        flip_bits,
        set_bytes,
        truncate,
        cut_span,
        duplicate_span,
        insert_random,
        header_swap,
        header_of_another,
        riff_webp_around,
        concatenate,
        png_dimensions,
        jpeg_dimensions,
        bmp_dimensions,
        empty_or_magic_only,
    )
}


def mutate(corpus: Mapping[str, bytes], index: int, seed: int = DEFAULT_SEED) -> Mutant:
    """Case ``index`` of ``seed``: a seed file, one to three mutations (none in one case of ten), a file name.

    Parameters
    ----------
    corpus
        Seed files by name (real photos in several formats); the same corpus and seed give the same cases.
    index
        Which case; each has a generator of its own, so any case can be made alone.
    seed
        The run's seed.

    Returns
    -------
    Mutant
        The bytes, the file name they are uploaded under (its extension right or wrong), and the recipe.
    """
    rng = random.Random(f"{seed}:{index}")
    source = rng.choice(sorted(corpus))
    data, recipe = corpus[source], []
    if rng.random() >= 0.1:  # one case in ten is a valid file, only its name may lie
        steps, tries = rng.choice((1, 1, 2, 3)), 0
        while len(recipe) < steps and tries < 10:  # a mutation that does not apply (no IHDR) is not a step
            tries += 1
            out, step = MUTATORS[rng.choice(sorted(MUTATORS))](data, rng, corpus)
            if out != data:
                data = out
                recipe.append(step)
    filename = f"case{index}{rng.choice(EXTENSIONS)}"
    return Mutant(index, source, tuple(recipe), filename, data)


def mutants(corpus: Mapping[str, bytes], count: int, seed: int = DEFAULT_SEED) -> Iterator[Mutant]:
    """Cases ``0 .. count - 1`` of ``seed`` (see :func:`mutate`)."""
    return (mutate(corpus, i, seed) for i in range(count))


def seed_corpus(side: int = DEFAULT_CORPUS_SIDE) -> dict[str, bytes]:
    """Real photos (tests/support/images.py) as files of every format the API takes, and a few variants.

    Two JPEG files as shipped; the others are downscaled to ``side`` pixels and encoded by OpenCV:
    PNG (colour, grey, 16-bit, with alpha), progressive JPEG, WebP (lossy, lossless), BMP and TIFF.
    """
    import cv2
    import numpy as np

    from tests.support.images import image_bgr, image_bytes

    def small(name: str) -> np.ndarray:
        img = image_bgr(name)
        scale = side / max(img.shape[:2])
        return cv2.resize(img, (round(img.shape[1] * scale), round(img.shape[0] * scale)), interpolation=cv2.INTER_AREA)

    def encode(ext: str, img: np.ndarray, *params: int) -> bytes:
        ok, buf = cv2.imencode(ext, img, list(params))
        assert ok, ext
        return buf.tobytes()

    astronaut, coffee, chelsea = small("astronaut"), small("coffee"), small("chelsea")
    return {
        "rocket.jpg": image_bytes("rocket"),
        "grace_hopper.jpg": image_bytes("grace_hopper"),
        "astronaut.png": encode(".png", astronaut),
        "astronaut-progressive.jpg": encode(".jpg", astronaut, cv2.IMWRITE_JPEG_PROGRESSIVE, 1),
        "astronaut-grey.png": encode(".png", cv2.cvtColor(astronaut, cv2.COLOR_BGR2GRAY)),
        "astronaut-16bit.png": encode(".png", astronaut.astype(np.uint16) * 257),
        "astronaut-alpha.png": encode(".png", cv2.cvtColor(astronaut, cv2.COLOR_BGR2BGRA)),
        "coffee.webp": encode(".webp", coffee, cv2.IMWRITE_WEBP_QUALITY, 80),
        "coffee-lossless.webp": encode(".webp", coffee, cv2.IMWRITE_WEBP_QUALITY, 101),
        "chelsea.bmp": encode(".bmp", chelsea),
        "motorcycle.tiff": encode(".tiff", small("motorcycle_left")),
    }
