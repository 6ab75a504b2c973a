"""bench/recognition.py's pure parts: the synthetic gallery and the report section."""

from __future__ import annotations

import numpy as np

from bench.recognition import BEGIN, END, synthetic_gallery, write_section


def test_synthetic_gallery_spreads_faces_like_dlibs_distances():
    matrix, centres = synthetic_gallery(2000)
    assert matrix.size == 2000 and len(matrix.subject_ids) == 1000 and matrix.starts[1] == 2
    same = np.linalg.norm(matrix.vectors[0] - matrix.vectors[1])
    other = np.linalg.norm(matrix.vectors[0] - matrix.vectors[2])
    assert 0.3 < same < 0.6 < 0.7 < other < 1.2


def test_write_section_replaces_only_its_own_section(tmp_path):
    report = tmp_path / "performance.md"
    report.write_text("# Performance\n\nother figures\n")
    write_section(report, f"{BEGIN}\nfirst\n{END}")
    write_section(report, f"{BEGIN}\nsecond\n{END}")
    text = report.read_text()
    assert text.startswith("# Performance\n\nother figures\n") and "second" in text and "first" not in text
