"""Matching faces against a gallery (pure numpy): distances, per-subject nearest faces, decisions."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from detectflow.jobs.options import Thresholds
from detectflow.jobs.results_recognition import Candidate, Decision, Match

__all__ = [
    "GalleryMatrix", "build_matrix", "decide", "subject_distances", "match_embeddings", "squared_distances",
    "fold_subjects", "exact_nearest", "DEFAULT_QUERY_CHUNK", "FACES_PER_SUBJECT_WANTED",
]  # fmt: skip

#: Queries per distance product of exact search (bounds its (queries, faces) block: 256 x 100k floats = 100 MB).
DEFAULT_QUERY_CHUNK = 256
#: Faces first taken per query (times top_k) before folding them per subject; more only when too few subjects.
FACES_PER_SUBJECT_WANTED = 4


@dataclass(frozen=True)
class GalleryMatrix:
    """A gallery's embeddings, grouped by subject, ready to search.

    Attributes
    ----------
    version
        The gallery version it was built from.
    vectors
        (N, D) float32, the faces of subject ``i`` in rows ``starts[i]:starts[i+1]``.
    norms
        (N,) float32 squared norms of ``vectors``.
    face_subject
        (N,) int: the subject index of each row.
    starts
        (S,) int: first row of each subject.
    subject_ids, subject_names
        Per subject index.
    """

    version: int
    vectors: np.ndarray
    norms: np.ndarray
    face_subject: np.ndarray
    starts: np.ndarray
    subject_ids: tuple[str, ...]
    subject_names: tuple[str, ...]
    index: object = field(default=None, compare=False)  # a faiss index (ann.py): exact, or approximate when large

    @property
    def size(self) -> int:
        return int(self.vectors.shape[0])

    @property
    def dimension(self) -> int:
        return int(self.vectors.shape[1]) if self.vectors.ndim == 2 else 0


def build_matrix(
    version: int,
    faces: Sequence[tuple[str, np.ndarray]],
    subject_names: dict[str, str],
    dimension: int = 128,
) -> GalleryMatrix:
    """A :class:`GalleryMatrix` of ``faces`` ((subject id, embedding) pairs); faces of unknown subjects are left out."""
    by_subject: dict[str, list[np.ndarray]] = {}
    for subject_id, vector in faces:
        if subject_id in subject_names:
            by_subject.setdefault(subject_id, []).append(np.asarray(vector, np.float32).reshape(-1))
    ids = tuple(sorted(by_subject))
    rows = [v for sid in ids for v in by_subject[sid]]
    vectors = np.stack(rows).astype(np.float32) if rows else np.zeros((0, dimension), np.float32)
    counts = np.array([len(by_subject[sid]) for sid in ids], np.int64)
    starts = np.concatenate([[0], np.cumsum(counts)[:-1]]).astype(np.int64) if len(ids) else np.zeros(0, np.int64)
    return GalleryMatrix(
        version=version,
        vectors=vectors,
        norms=(vectors.astype(np.float32) ** 2).sum(1),
        face_subject=np.repeat(np.arange(len(ids)), counts),
        starts=starts,
        subject_ids=ids,
        subject_names=tuple(subject_names[sid] for sid in ids),
    )


def squared_distances(queries: np.ndarray, vectors: np.ndarray, norms: np.ndarray | None = None) -> np.ndarray:
    """(Q, N) squared Euclidean distances, clipped at 0 (one matrix product)."""
    q = np.asarray(queries, np.float32)
    if norms is None:
        norms = (vectors**2).sum(1)
    d2 = (q**2).sum(1)[:, None] + norms[None, :] - 2.0 * (q @ vectors.T)
    return np.maximum(d2, 0.0, out=d2)


def subject_distances(matrix: GalleryMatrix, queries: np.ndarray) -> np.ndarray:
    """(Q, S) distance from each query to each subject's nearest face (exact search)."""
    q = np.atleast_2d(np.asarray(queries, np.float32))
    if not matrix.subject_ids:
        return np.zeros((len(q), 0), np.float32)
    d2 = squared_distances(q, matrix.vectors, matrix.norms)
    return np.sqrt(np.minimum.reduceat(d2, matrix.starts, axis=1))


def decide(distance: float | None, thresholds: Thresholds) -> Decision:
    """``match`` at or under ``thresholds.match``, ``uncertain`` at or under ``thresholds.uncertain``, else ``unknown``."""
    if distance is None or distance > thresholds.uncertain:
        return "unknown"
    return "match" if distance <= thresholds.match else "uncertain"


def _top(row: np.ndarray, k: int) -> np.ndarray:
    k = min(k, len(row))
    if k == 0:
        return np.zeros(0, np.int64)
    part = np.argpartition(row, k - 1)[:k] if k < len(row) else np.arange(len(row))
    return part[np.argsort(row[part], kind="stable")]


def fold_subjects(
    face_subject: np.ndarray, labels: np.ndarray, d2: np.ndarray, top_k: int
) -> tuple[list[tuple[int, float]], int]:
    """The first ``top_k`` subjects of faces sorted nearest first, with their distances, and how many were found.

    A subject's first face in a nearest-first list is its nearest one, so when the list is the true head of
    the gallery's faces, the subjects read off it in order are exact search's top subjects.
    """
    best: dict[int, float] = {}
    for label, dist2 in zip(labels.tolist(), d2.tolist(), strict=True):
        if label < 0:
            continue
        s = int(face_subject[label])
        if s not in best:
            best[s] = float(np.sqrt(max(dist2, 0.0)))
            if len(best) == top_k:
                break
    return list(best.items()), len(best)


def exact_nearest(
    matrix: GalleryMatrix, queries: np.ndarray, top_k: int, chunk: int = DEFAULT_QUERY_CHUNK
) -> list[list[tuple[int, float]]]:
    """Per query, exact search's ``top_k`` (subject index, distance) pairs, nearest first.

    One float32 matrix product per ``chunk`` queries, then per query a partial sort (argpartition) of the
    ``4 * top_k`` nearest faces folded per subject (widened only while they hold fewer than ``top_k``
    subjects): no full sort and no per-subject pass over the gallery.
    """
    q = np.atleast_2d(np.asarray(queries, np.float32))
    n = matrix.size
    if n == 0:
        return [[] for _ in q]
    vectors_t = matrix.vectors.T
    out = []
    for start in range(0, len(q), chunk):
        block = q[start : start + chunk]
        partial = block @ vectors_t  # (C, N) float32
        partial *= -2.0
        partial += matrix.norms  # |v|^2 - 2 q.v: the order of |q - v|^2, |q|^2 added to the few kept
        q_norms = (block * block).sum(1)
        for row, q_norm in zip(partial, q_norms.tolist(), strict=True):
            wanted = min(n, top_k * FACES_PER_SUBJECT_WANTED)
            while True:
                labels = _top(row, wanted)
                found, seen = fold_subjects(matrix.face_subject, labels, row[labels] + q_norm, top_k)
                if seen >= min(top_k, len(matrix.subject_ids)) or wanted >= n:
                    break
                wanted = min(n, wanted * 4)
            out.append(found)
    return out


def match_embeddings(
    matrix: GalleryMatrix, queries: np.ndarray, thresholds: Thresholds, top_k: int = 3
) -> list[tuple[Match, list[Candidate]]]:
    """The decision and the ``top_k`` nearest subjects of every query, in order.

    An ``unknown`` decision names no subject: the nearest one is only among the candidates.
    A matrix with a faiss index (``matrix.index``, see ``galleries.ann``) is searched through it, else
    by :func:`exact_nearest` (numpy).
    """
    q = np.atleast_2d(np.asarray(queries, np.float32))
    if matrix.index is not None:
        per_query = matrix.index.search(q, top_k)
    else:
        per_query = exact_nearest(matrix, q, top_k)
    out = []
    for nearest in per_query:
        candidates = [
            Candidate(subject_id=matrix.subject_ids[j], subject_name=matrix.subject_names[j], distance=round(d, 6))
            for j, d in nearest
        ]
        best = candidates[0] if candidates else None
        decision = decide(best.distance if best else None, thresholds)
        if best is None or decision == "unknown":
            match = Match(distance=best.distance if best else None, decision="unknown")
        else:
            match = Match(
                subject_id=best.subject_id, subject_name=best.subject_name, distance=best.distance, decision=decision
            )
        out.append((match, candidates))
    return out
