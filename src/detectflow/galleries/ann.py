"""An approximate nearest-neighbour index for large galleries (faiss HNSW), behind the exact search's interface.

faiss-cpu was picked by measurement against hnswlib and usearch (docs/performance.md): at the same graph
parameters it built a 100k-face index 4-8x faster, with the lowest query p99.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace

import numpy as np

from detectflow.galleries.match import GalleryMatrix

__all__ = ["HnswIndex", "indexer_for", "ann_available", "DEFAULT_HNSW_M", "DEFAULT_HNSW_EF_SEARCH"]

#: Graph degree of the HNSW index (links per node).
DEFAULT_HNSW_M = 32
#: Candidates kept while building (faiss efConstruction).
DEFAULT_HNSW_EF_CONSTRUCTION = 100
#: Candidates kept while searching (faiss efSearch): recall@1 0.99 at 100k synthetic faces.
DEFAULT_HNSW_EF_SEARCH = 256


def ann_available() -> bool:
    """Whether faiss (the ``recognition`` extra) is installed."""
    try:
        import faiss  # noqa: F401
    except ImportError:
        return False
    return True


class HnswIndex:
    """HNSW over a gallery's faces; a search asks for more faces than ``top_k`` and folds them per subject."""

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

    def search(self, queries: np.ndarray, top_k: int) -> list[list[tuple[int, float]]]:
        """Per query, up to ``top_k`` (subject index, distance) pairs, nearest first."""
        k = int(min(self.face_subject.size, max(top_k * 4, 10)))
        d2, labels = self.index.search(np.ascontiguousarray(queries, np.float32), k)
        out = []
        for row_labels, row_d2 in zip(labels, d2, strict=True):
            best: dict[int, float] = {}
            for label, dist2 in zip(row_labels, row_d2, strict=True):
                if label < 0:
                    continue
                s = int(self.face_subject[label])
                if s not in best:  # nearest first: the first face of a subject is its nearest
                    best[s] = float(np.sqrt(max(float(dist2), 0.0)))
            out.append(sorted(best.items(), key=lambda kv: kv[1])[:top_k])
        return out


def indexer_for(min_faces: int) -> Callable[[GalleryMatrix], GalleryMatrix] | None:
    """What a GalleryCache calls on a fresh matrix: an HNSW index from ``min_faces`` faces up (when installed)."""
    if not ann_available():
        return None

    def index(matrix: GalleryMatrix) -> GalleryMatrix:
        if matrix.size < min_faces:
            return matrix
        return replace(matrix, index=HnswIndex(matrix))

    return index
