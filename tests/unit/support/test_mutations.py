"""The media fuzzer's mutator: seeded, reproducible, and every mutation does what it says."""

from __future__ import annotations

import random
import struct
import zlib

import cv2
import numpy as np
import pytest

from detectflow.jobs.images import sniff_format
from tests.support.mutations import MUTATORS, mutants, mutate


def _encode(ext: str) -> bytes:
    img = np.zeros((24, 32, 3), np.uint8)
    img[4:20, 8:24] = (30, 120, 220)
    return cv2.imencode(ext, img)[1].tobytes()


@pytest.fixture(scope="module")
def corpus() -> dict[str, bytes]:
    return {"a.png": _encode(".png"), "b.jpg": _encode(".jpg"), "c.bmp": _encode(".bmp"), "d.webp": _encode(".webp")}


def test_mutate_same_seed_and_index_give_the_same_case(corpus):
    assert mutate(corpus, 7, seed=3) == mutate(corpus, 7, seed=3)
    assert [m.data for m in mutants(corpus, 50, seed=3)] == [mutate(corpus, i, seed=3).data for i in range(50)]


def test_mutate_other_seeds_give_other_cases(corpus):
    a = [m.data for m in mutants(corpus, 50, seed=1)]
    b = [m.data for m in mutants(corpus, 50, seed=2)]
    assert sum(x != y for x, y in zip(a, b)) > 40


def test_mutants_use_every_mutator_and_leave_some_files_valid(corpus):
    cases = list(mutants(corpus, 1000))
    used = {step.split("(")[0] for m in cases for step in m.recipe}
    assert set(MUTATORS) - {"magic_only", "empty"} <= used | {"empty_or_magic_only"}
    unchanged = [m for m in cases if not m.recipe]
    assert 50 <= len(unchanged) <= 150 and all(m.data == corpus[m.source] for m in unchanged)
    assert len({m.data for m in cases}) > 750  # most cases are new bytes (empty and magic-only ones repeat)
    changed = [m for m in cases if m.recipe]
    assert sum(m.data != corpus[m.source] for m in changed) >= 0.99 * len(changed)  # (two steps may undo each other)
    assert any(not m.filename.endswith(m.source[-4:]) for m in unchanged)  # a valid file under a wrong name


def test_mutate_describe_names_the_source_and_steps(corpus):
    m = next(m for m in mutants(corpus, 100) if len(m.recipe) >= 2)
    assert m.source in m.describe() and " | " in m.describe() and m.filename in m.describe()


def test_png_dimensions_recomputes_the_ihdr_crc(corpus):
    rng = random.Random(0)
    for _ in range(20):
        out, step = MUTATORS["png_dimensions"](corpus["a.png"], rng, corpus)
        at = out.find(b"IHDR")
        crc_ok = struct.unpack(">I", out[at + 17 : at + 21])[0] == zlib.crc32(out[at : at + 17])
        assert crc_ok == ("crc=fixed" in step), step
        width, height = struct.unpack(">II", out[at + 4 : at + 12])
        assert f"{width}x{height}" in step


def test_riff_webp_around_makes_a_webp_header_around_the_original(corpus):
    out, _ = MUTATORS["riff_webp_around"](corpus["b.jpg"], random.Random(1), corpus)
    assert sniff_format(out) == "WEBP" and out.endswith(corpus["b.jpg"])


def test_truncate_and_header_swap(corpus):
    rng = random.Random(2)
    for _ in range(20):
        out, step = MUTATORS["truncate"](corpus["a.png"], rng, corpus)
        assert corpus["a.png"].startswith(out) and f"keep={len(out)}" in step
    out, step = MUTATORS["header_swap"](corpus["a.png"], random.Random(5), corpus)
    assert len(out) >= len(corpus["a.png"]) - 1 and out != corpus["a.png"] and step.startswith("header_swap(")


def test_dimension_mutators_leave_other_formats_alone(corpus):
    rng = random.Random(3)
    assert MUTATORS["png_dimensions"](corpus["b.jpg"], rng, corpus)[0] == corpus["b.jpg"]
    assert MUTATORS["jpeg_dimensions"](corpus["a.png"], rng, corpus)[0] == corpus["a.png"]
    assert MUTATORS["bmp_dimensions"](corpus["a.png"], rng, corpus)[0] == corpus["a.png"]
    out, step = MUTATORS["jpeg_dimensions"](corpus["b.jpg"], rng, corpus)
    assert out != corpus["b.jpg"] and len(out) == len(corpus["b.jpg"]), step
