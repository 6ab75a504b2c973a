"""An approximate nearest-neighbour index for large galleries (HNSW), behind the exact search's interface."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace

import numpy as np

from detectflow.galleries.match import GalleryMatrix

__all__ = ["HnswIndex", "indexer_for", "ann_available"]


def ann_available() -> bool:
    """Whether the HNSW library (the ``recognition`` extra) is installed."""
    try:
        import hnswlib  # noqa: F401
    except ImportError:
        return False
    return True


class HnswIndex:
    """HNSW over a gallery's faces; a search asks for more faces than ``top_k`` and folds them per subject."""

    def __init__(self, matrix: GalleryMatrix, m: int = 16, ef_construction: int = 200, ef: int = 64) -> None:
        import hnswlib

        self.face_subject = matrix.face_subject
        self.ef = ef
        self.index = hnswlib.Index(space="l2", dim=matrix.dimension)
        self.index.init_index(max_elements=max(1, matrix.size), M=m, ef_construction=ef_construction)
        self.index.add_items(matrix.vectors, np.arange(matrix.size))
        self.index.set_ef(ef)

    def search(self, queries: np.ndarray, top_k: int) -> list[list[tuple[int, float]]]:
        """Per query, up to ``top_k`` (subject index, distance) pairs, nearest first."""
        k = min(self.face_subject.size, max(top_k * 4, 10))
        labels, d2 = self.index.knn_query(queries, k=k)
        out = []
        for row_labels, row_d2 in zip(labels, d2, strict=True):
            best: dict[int, float] = {}
            for label, dist2 in zip(row_labels, row_d2, strict=True):
                s = int(self.face_subject[label])
                if s not in best:  # nearest first: the first face of a subject is its nearest
                    best[s] = float(np.sqrt(max(dist2, 0.0)))
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
