"""bench/recognition.py's pure parts: the synthetic gallery (its report section is tests/bench/test_report.py's)."""

from __future__ import annotations

import numpy as np

from bench.recognition import synthetic_gallery


def test_synthetic_gallery_spreads_faces_like_dlibs_distances():
    matrix, centres = synthetic_gallery(2000)
    assert matrix.size == 2000 and len(matrix.subject_ids) == 1000 and matrix.starts[1] == 2
    same = np.linalg.norm(matrix.vectors[0] - matrix.vectors[1])
    other = np.linalg.norm(matrix.vectors[0] - matrix.vectors[2])
    assert 0.3 < same < 0.6 < 0.7 < other < 1.2

