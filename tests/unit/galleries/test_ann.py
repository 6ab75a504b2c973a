"""The faiss indexes find what exact search finds, folded per subject: flat exactly, IVF-Flat on a small gallery."""

from __future__ import annotations

import numpy as np
import pytest

from detectflow.galleries.ann import FlatIndex, HnswIndex, IvfIndex, indexer_for
from detectflow.galleries.match import build_matrix, exact_nearest, match_embeddings
from detectflow.jobs.options import Thresholds

pytest.importorskip("faiss")


def _gallery(subjects: int = 200, per_subject: int = 2, dim: int = 32, seed: int = 1):
    rng = np.random.default_rng(seed)
    centers = rng.normal(size=(subjects, dim)).astype(np.float32)
    faces = [(f"s{i}", c + rng.normal(size=dim).astype(np.float32) * 0.05)
             for i, c in enumerate(centers) for _ in range(per_subject)]  # fmt: skip
    matrix = build_matrix(1, faces, {f"s{i}": f"S{i}" for i in range(subjects)}, dimension=dim)
    queries = centers[:20] + rng.normal(size=(20, dim)).astype(np.float32) * 0.05
    return matrix, queries


def test_indexer_for_gives_flat_below_the_threshold_and_ivf_from_it():
    matrix, _ = _gallery()
    assert isinstance(indexer_for(min_faces=10_000)(matrix).index, FlatIndex)
    assert isinstance(indexer_for(min_faces=10)(matrix).index, IvfIndex)
    empty = build_matrix(1, [], {})
    assert indexer_for(min_faces=10)(empty).index is None


@pytest.mark.parametrize("make", [IvfIndex, HnswIndex])
def test_approximate_indexes_agree_with_exact_search_on_a_small_gallery(make):
    exact, queries = _gallery()
    approx = exact.__class__(**{**exact.__dict__, "index": make(exact)})
    t = Thresholds(match=0.5, uncertain=0.6)
    for (m1, c1), (m2, c2) in zip(match_embeddings(exact, queries, t, 3), match_embeddings(approx, queries, t, 3)):
        assert c1[0].subject_id == c2[0].subject_id and c1[0].distance == pytest.approx(c2[0].distance, abs=1e-4)
        assert m1.decision == m2.decision


def _crowded(dim: int = 32):
    """30 subjects, one face each, plus 40 faces of s0 nearest the first query: its first 12 faces hold one subject."""
    matrix, queries = _gallery(subjects=30, per_subject=1, dim=dim)
    faces = [(matrix.subject_ids[j], v) for j, v in zip(matrix.face_subject, matrix.vectors, strict=True)]
    faces += [("s0", queries[0] + np.float32(0.001) * k) for k in range(40)]
    return build_matrix(2, faces, {f"s{i}": f"S{i}" for i in range(30)}, dimension=dim), queries


def test_flat_index_is_exact_search_even_when_one_subject_holds_the_nearest_faces():
    big, queries = _crowded()
    flat = FlatIndex(big)
    for top_k in (1, 3, 5):
        got = flat.search(queries[:5], top_k)
        want = exact_nearest(big, queries[:5], top_k)
        assert [[s for s, _ in row] for row in got] == [[s for s, _ in row] for row in want]
        assert all(len(row) == top_k for row in got)
        np.testing.assert_allclose([d for row in got for _, d in row], [d for row in want for _, d in row], atol=1e-4)
