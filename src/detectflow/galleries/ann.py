"""faiss indexes over a gallery's faces: exact (IndexFlatL2) up to the ANN threshold, IVF-Flat above it.

faiss-cpu was picked by measurement against hnswlib and usearch (docs/performance.md): at the same graph
parameters it built a 100k-face HNSW index 4-8x faster, with the lowest query p99. IVF-Flat then beat HNSW
itself: a 1M-face index builds in 41-94 s (HNSW: well over a quarter of an hour on two cores) and answers in
about 1 ms with recall@1 1.0 on the bench's synthetic gallery. Exact search through faiss's SIMD scan is two to
three times faster than numpy's matrix product at 100k faces (docs/performance.md).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace

import numpy as np

from detectflow.galleries.match import FACES_PER_SUBJECT_WANTED, GalleryMatrix, fold_subjects

__all__ = [
    "FlatIndex", "HnswIndex", "IvfIndex", "indexer_for", "ann_available", "DEFAULT_HNSW_M",
    "DEFAULT_HNSW_EF_SEARCH", "DEFAULT_IVF_NLIST", "DEFAULT_IVF_NPROBE",
]  # fmt: skip

#: Graph degree of the HNSW index (links per node).
DEFAULT_HNSW_M = 32
#: Candidates kept while building (faiss efConstruction).
DEFAULT_HNSW_EF_CONSTRUCTION = 100
#: Candidates kept while searching (faiss efSearch): recall@1 0.99 at 100k synthetic faces.
DEFAULT_HNSW_EF_SEARCH = 256
#: Inverted lists (k-means cells) of the IVF index.
DEFAULT_IVF_NLIST = 4096
#: Cells an IVF search visits.
DEFAULT_IVF_NPROBE = 64
#: Faces the IVF k-means is trained on (a random sample; faiss wants >= 39 per cell).
DEFAULT_IVF_TRAIN_FACES = 200_000


def ann_available() -> bool:
    """Whether faiss (the ``recognition`` extra) is installed."""
    try:
        import faiss  # noqa: F401
    except ImportError:
        return False
    return True


class _FaissIndex:
    """A faiss index over a gallery's faces; a search asks for more faces than ``top_k`` and folds them per subject."""

    face_subject: np.ndarray
    index: object

    def search(self, queries: np.ndarray, top_k: int) -> list[list[tuple[int, float]]]:
        """Per query, up to ``top_k`` (subject index, distance) pairs, nearest first."""
        k = int(min(self.face_subject.size, max(top_k * 4, 10)))
        d2, labels = self.index.search(np.ascontiguousarray(queries, np.float32), k)
        return [fold_subjects(self.face_subject, lab, d, top_k)[0] for lab, d in zip(labels, d2, strict=True)]


class FlatIndex(_FaissIndex):
    """Exact search (faiss IndexFlatL2: every face scanned with SIMD), widened until ``top_k`` subjects are found.

    It holds its own float32 copy of the gallery's vectors.
    """

    def __init__(self, matrix: GalleryMatrix) -> None:
        import faiss

        self.face_subject = matrix.face_subject
        self.subjects = len(matrix.subject_ids)
        self.index = faiss.IndexFlatL2(matrix.dimension)
        self.index.add(np.ascontiguousarray(matrix.vectors, np.float32))

    def search(self, queries: np.ndarray, top_k: int) -> list[list[tuple[int, float]]]:
        """Per query, exact search's ``top_k`` (subject index, distance) pairs, nearest first."""
        q = np.ascontiguousarray(np.atleast_2d(queries), np.float32)
        n = int(self.face_subject.size)
        if n == 0:
            return [[] for _ in q]
        want = min(top_k, self.subjects)
        k = min(n, top_k * FACES_PER_SUBJECT_WANTED)
        d2, labels = self.index.search(q, k)
        out = []
        for i, (lab, d) in enumerate(zip(labels, d2, strict=True)):
            found, seen = fold_subjects(self.face_subject, lab, d, top_k)
            wider = k
            while seen < want and wider < n:  # many faces of few subjects ahead: look further
                wider = min(n, wider * 4)
                wd2, wlab = self.index.search(q[i : i + 1], wider)
                found, seen = fold_subjects(self.face_subject, wlab[0], wd2[0], top_k)
            out.append(found)
        return out


class HnswIndex(_FaissIndex):
    """HNSW (a graph) over a gallery's faces: measured against IVF-Flat and kept for that comparison."""

    def __init__(
        self,
        matrix: GalleryMatrix,
        m: int = DEFAULT_HNSW_M,
        ef_construction: int = DEFAULT_HNSW_EF_CONSTRUCTION,
        ef_search: int = DEFAULT_HNSW_EF_SEARCH,
    ) -> None:
        import faiss

        self.face_subject = matrix.face_subject
        self.index = faiss.IndexHNSWFlat(matrix.dimension, m)
        self.index.hnsw.efConstruction = ef_construction
        self.index.add(np.ascontiguousarray(matrix.vectors, np.float32))
        self.index.hnsw.efSearch = ef_search


class IvfIndex(_FaissIndex):
    """IVF-Flat over a gallery's faces: k-means cells trained on a sample, ``nprobe`` cells searched per query."""

    def __init__(
        self,
        matrix: GalleryMatrix,
        nlist: int = DEFAULT_IVF_NLIST,
        nprobe: int = DEFAULT_IVF_NPROBE,
        train_faces: int = DEFAULT_IVF_TRAIN_FACES,
        seed: int = 0,
    ) -> None:
        import faiss

        vectors = np.ascontiguousarray(matrix.vectors, np.float32)
        nlist = int(max(1, min(nlist, matrix.size // 39)))  # small galleries: fewer cells
        self.face_subject = matrix.face_subject
        self.quantizer = faiss.IndexFlatL2(matrix.dimension)  # the cells' centroids (kept alive with the index)
        self.index = faiss.IndexIVFFlat(self.quantizer, matrix.dimension, nlist)
        sample = np.random.default_rng(seed).permutation(matrix.size)[:train_faces]
        self.index.train(vectors[np.sort(sample)])
        self.index.add(vectors)
        self.index.nprobe = int(min(nprobe, nlist))


def indexer_for(min_faces: int) -> Callable[[GalleryMatrix], GalleryMatrix] | None:
    """What a GalleryCache calls on a fresh matrix (None without faiss: numpy's exact search then).

    Under ``min_faces`` faces an exact :class:`FlatIndex`, from ``min_faces`` up an :class:`IvfIndex`.
    """
    if not ann_available():
        return None

    def index(matrix: GalleryMatrix) -> GalleryMatrix:
        if matrix.size == 0:
            return matrix
        return replace(matrix, index=FlatIndex(matrix) if matrix.size < min_faces else IvfIndex(matrix))

    return index
