"""Matching: per-subject nearest faces, decisions against thresholds, unknown never names a subject."""

from __future__ import annotations

import numpy as np
import pytest

from detectflow.galleries.match import build_matrix, decide, exact_nearest, match_embeddings, subject_distances
from detectflow.jobs.options import Thresholds


def _unit(i: int, d: int = 8) -> np.ndarray:
    v = np.zeros(d, np.float32)
    v[i] = 1.0
    return v


@pytest.mark.parametrize(
    ("distance", "decision"),
    [(0.0, "match"), (0.5, "match"), (0.5001, "uncertain"), (0.6, "uncertain"), (0.61, "unknown"), (None, "unknown")],
)
def test_decide_match_uncertain_unknown_at_the_thresholds(distance, decision):
    assert decide(distance, Thresholds(match=0.5, uncertain=0.6)) == decision


def test_thresholds_uncertain_below_match_is_refused():
    with pytest.raises(ValueError, match="uncertain"):
        Thresholds(match=0.6, uncertain=0.5)


def test_subject_distances_take_each_subjects_nearest_face():
    faces = [("b", _unit(1)), ("a", _unit(0)), ("a", _unit(0) * 0.5), ("b", _unit(2))]
    m = build_matrix(3, faces, {"a": "Ann", "b": "Bob"})
    assert m.subject_ids == ("a", "b") and m.size == 4 and m.version == 3
    d = subject_distances(m, np.stack([_unit(0) * 0.6, _unit(2)]))
    np.testing.assert_allclose(d, [[0.1, np.sqrt(0.36 + 1)], [np.sqrt(1.25), 0.0]], atol=1e-6)


def test_match_embeddings_unknown_face_names_no_subject_but_lists_the_nearest():
    m = build_matrix(1, [("a", _unit(0)), ("b", _unit(1))], {"a": "Ann", "b": "Bob"})
    near_a = _unit(0) + 0.2 * _unit(3)  # 0.2 from Ann
    between = _unit(0) * 0.0 + 0.75 * _unit(2)  # 1.25 from both
    maybe_b = _unit(1) + 0.55 * _unit(4)
    (m1, c1), (m2, c2), (m3, c3) = match_embeddings(m, np.stack([near_a, between, maybe_b]), Thresholds(), top_k=2)
    assert (m1.decision, m1.subject_id, m1.subject_name) == ("match", "a", "Ann")
    assert [c.subject_id for c in c1] == ["a", "b"] and c1[0].distance < c1[1].distance
    assert m2.decision == "unknown" and m2.subject_id is None and m2.subject_name is None
    assert m2.distance == pytest.approx(1.25) and len(c2) == 2  # the nearest is a candidate, not the match
    assert (m3.decision, m3.subject_id) == ("uncertain", "b")
    assert [c.subject_id for c in c3][:1] == ["b"]


def test_match_embeddings_empty_gallery_is_unknown_without_distance():
    m = build_matrix(0, [], {})
    ((match, candidates),) = match_embeddings(m, _unit(0)[None], Thresholds())
    assert match.decision == "unknown" and match.distance is None and candidates == []


def test_match_embeddings_top_k_is_bounded_by_the_subjects_and_sorted():
    rng = np.random.default_rng(0)
    vectors = rng.normal(size=(30, 16)).astype(np.float32)
    faces = [(f"s{i % 10}", v) for i, v in enumerate(vectors)]
    m = build_matrix(1, faces, {f"s{i}": f"S{i}" for i in range(10)})
    q = rng.normal(size=(5, 16)).astype(np.float32)
    exact = np.sqrt(((q[:, None, :] - vectors[None]) ** 2).sum(-1))
    for (match, candidates), row in zip(match_embeddings(m, q, Thresholds(match=2, uncertain=2), top_k=4), exact):
        assert len(candidates) == 4
        assert [c.distance for c in candidates] == sorted(c.distance for c in candidates)
        assert candidates[0].distance == pytest.approx(row.min(), abs=1e-4)
        assert candidates[0].subject_id == f"s{int(row.argmin()) % 10}"
    assert len(match_embeddings(m, q[:1], Thresholds(), top_k=50)[0][1]) == 10


def test_build_matrix_leaves_out_faces_of_deleted_subjects():
    m = build_matrix(2, [("gone", _unit(0)), ("a", _unit(1))], {"a": "Ann"})
    assert m.subject_ids == ("a",) and m.size == 1


def test_exact_nearest_equals_the_per_subject_minimum_also_when_one_subject_crowds_the_head():
    rng = np.random.default_rng(3)
    vectors = rng.normal(size=(40, 16)).astype(np.float32)
    q = rng.normal(size=(6, 16)).astype(np.float32)
    crowd = [q[0] + np.float32(0.01) * k for k in range(1, 31)]  # 30 faces of s0 nearest query 0
    faces = [(f"s{i % 8}", v) for i, v in enumerate(vectors)] + [("s0", v) for v in crowd]
    m = build_matrix(1, faces, {f"s{i}": f"S{i}" for i in range(8)})
    want = subject_distances(m, q)
    for top_k in (1, 3, 8):
        for chunk in (1, 4, 256):  # the query blocks do not change the answer
            got = exact_nearest(m, q, top_k, chunk=chunk)
            for row, full in zip(got, want, strict=True):
                order = np.argsort(full, kind="stable")[:top_k]
                assert [s for s, _ in row] == order.tolist()
                np.testing.assert_allclose([d for _, d in row], full[order], atol=1e-4)
