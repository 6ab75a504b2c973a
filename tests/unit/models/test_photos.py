"""Face mosaics of the int8 photo set: packing, mirroring, the canvas cap, determinism."""

from __future__ import annotations

import numpy as np

from detectflow.models.photos import mosaic


def _piece(h: int, w: int, value: int) -> np.ndarray:
    img = np.full((h, w, 3), value, np.uint8)
    img[:, : w // 2] = 0  # left half dark, to see mirroring
    return img


def test_mosaic_packs_pieces_row_by_row_at_the_given_height() -> None:
    pieces = [_piece(200, 200, 250), _piece(100, 200, 200), _piece(200, 100, 150)]
    m = mosaic(pieces, 100, canvas=(300, 350))
    # at 100 px high the widths are 100, 200 and 50: exactly one row of 350
    assert m.shape == (100, 350, 3)
    assert m[50, 10, 0] == 0 and m[50, 90, 0] == 250  # first piece as is: dark left half
    assert m[50, 110, 0] == 200 and m[50, 290, 0] == 0  # second piece mirrored: dark right half


def test_mosaic_starts_a_new_row_and_drops_what_does_not_fit() -> None:
    pieces = [_piece(100, 100, v) for v in (10, 20, 30, 40, 50)]
    m = mosaic(pieces, 100, canvas=(200, 250))
    assert m.shape == (200, 200, 3)  # two per row, two rows; the fifth is left out
    assert m[50, 60, 0] == 10 and m[150, 60, 0] == 30
    assert m[150, 140, 0] == 40 and m[150, 190, 0] == 0  # the fourth, mirrored


def test_mosaic_is_deterministic() -> None:
    rng = np.random.default_rng(1)
    pieces = [rng.integers(0, 256, (120, 90, 3), dtype=np.uint8) for _ in range(4)]
    assert np.array_equal(mosaic(pieces, 64), mosaic(pieces, 64))
