"""The HNSW index finds what exact search finds on a small gallery, folded per subject."""

from __future__ import annotations

import numpy as np
import pytest

from detectflow.galleries.ann import indexer_for
from detectflow.galleries.match import build_matrix, match_embeddings
from detectflow.jobs.options import Thresholds

pytest.importorskip("faiss")


def test_hnsw_index_agrees_with_exact_search_on_a_small_gallery():
    rng = np.random.default_rng(1)
    centers = rng.normal(size=(200, 32)).astype(np.float32)
    faces = [(f"s{i}", c + rng.normal(size=32).astype(np.float32) * 0.05) for i, c in enumerate(centers) for _ in (0, 1)]
    exact = build_matrix(1, faces, {f"s{i}": f"S{i}" for i in range(200)}, dimension=32)
    approx = indexer_for(min_faces=10)(exact)
    assert approx.index is not None and indexer_for(min_faces=10_000)(exact).index is None
    queries = centers[:50] + rng.normal(size=(50, 32)).astype(np.float32) * 0.05
    t = Thresholds(match=0.5, uncertain=0.6)
    for (m1, c1), (m2, c2) in zip(match_embeddings(exact, queries, t, 3), match_embeddings(approx, queries, t, 3)):
        assert c1[0].subject_id == c2[0].subject_id and c1[0].distance == pytest.approx(c2[0].distance, abs=1e-4)
        assert m1.decision == m2.decision
