"""GalleryCache: a matrix is read once per gallery version; a change or a deletion is seen on the next use."""

from __future__ import annotations

import numpy as np

from detectflow.galleries.cache import GalleryCache


class _Store:
    """The two reads the cache makes (version, snapshot), over a dict: the real store is tested on Redis."""

    def __init__(self) -> None:
        self.galleries: dict[tuple[str, str], tuple[int, dict, list]] = {}

    def version(self, tenant, gallery_id):
        got = self.galleries.get((tenant, gallery_id))
        return None if got is None else got[0]

    def snapshot(self, tenant, gallery_id):
        return self.galleries.get((tenant, gallery_id), (None, {}, []))


def test_gallery_cache_reads_a_gallery_once_per_version_and_refreshes_on_change():
    store = _Store()
    store.galleries[("t", "g")] = (1, {"a": "Ann"}, [("f1", "a", np.ones(4, np.float32))])
    cache = GalleryCache(store)
    first = cache.get("t", "g")
    assert first.size == 1 and cache.get("t", "g") is first and cache.loads == 1
    store.galleries[("t", "g")] = (2, {"a": "Ann"}, [("f1", "a", np.ones(4)), ("f2", "a", np.zeros(4))])
    second = cache.get("t", "g")
    assert second.version == 2 and second.size == 2 and cache.loads == 2


def test_gallery_cache_forgets_a_deleted_gallery_and_keeps_tenants_apart():
    store = _Store()
    store.galleries[("t", "g")] = (1, {"a": "Ann"}, [("f1", "a", np.ones(4, np.float32))])
    cache = GalleryCache(store)
    assert cache.get("t", "g") is not None
    assert cache.get("other", "g") is None  # another tenant's gallery of the same id does not exist
    del store.galleries[("t", "g")]
    assert cache.get("t", "g") is None


def test_gallery_cache_drops_the_least_recently_used_beyond_its_size():
    store = _Store()
    for i in range(3):
        store.galleries[("t", f"g{i}")] = (1, {"a": "A"}, [("f", "a", np.ones(2, np.float32))])
    cache = GalleryCache(store, max_galleries=2)
    for i in range(3):
        cache.get("t", f"g{i}")
    assert list(cache._items) == [("t", "g1"), ("t", "g2")]


def test_gallery_cache_applies_the_indexer_to_fresh_matrices():
    store = _Store()
    store.galleries[("t", "g")] = (1, {"a": "A"}, [("f", "a", np.ones(2, np.float32))])
    seen = []
    cache = GalleryCache(store, indexer=lambda m: seen.append(m.version) or m)
    cache.get("t", "g")
    cache.get("t", "g")
    assert seen == [1]
