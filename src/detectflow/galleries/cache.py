"""Per-process cache of gallery matrices, refreshed when a gallery's version changes (one HGET per use)."""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable

from detectflow.galleries.match import GalleryMatrix, build_matrix

__all__ = ["GalleryCache", "DEFAULT_CACHE_GALLERIES"]

#: Galleries one process keeps in memory (least recently used dropped first).
DEFAULT_CACHE_GALLERIES = 64


class GalleryCache:
    """Gallery matrices by (tenant, gallery id); a changed version (or a deleted gallery) is read again.

    Parameters
    ----------
    store
        Anything with ``version(tenant, id)`` and ``snapshot(tenant, id)`` (a ``GalleryStore``).
    indexer
        Called on a freshly built matrix; returns it with an approximate index when the gallery is large.
    """

    def __init__(
        self,
        store,
        indexer: Callable[[GalleryMatrix], GalleryMatrix] | None = None,
        max_galleries: int = DEFAULT_CACHE_GALLERIES,
    ) -> None:
        self.store = store
        self.indexer = indexer
        self.max_galleries = max_galleries
        self._items: OrderedDict[tuple[str, str], GalleryMatrix] = OrderedDict()
        self._lock = threading.Lock()
        self.loads = 0  # snapshots read (tests and metrics)

    def get(self, tenant: str, gallery_id: str) -> GalleryMatrix | None:
        """The current matrix of a gallery; None when it does not exist (for this tenant)."""
        key = (tenant, gallery_id)
        version = self.store.version(tenant, gallery_id)
        with self._lock:
            if version is None:
                self._items.pop(key, None)
                return None
            cached = self._items.get(key)
            if cached is not None and cached.version == version:
                self._items.move_to_end(key)
                return cached
        snap_version, subjects, faces = self.store.snapshot(tenant, gallery_id)
        if snap_version is None:
            return None
        matrix = build_matrix(snap_version, [(sid, v) for _, sid, v in faces], subjects)
        if self.indexer is not None:
            matrix = self.indexer(matrix)
        with self._lock:
            self.loads += 1
            current = self._items.get(key)
            if current is None or current.version <= matrix.version:
                self._items[key] = matrix
                self._items.move_to_end(key)
            while len(self._items) > self.max_galleries:
                self._items.popitem(last=False)
        return matrix
