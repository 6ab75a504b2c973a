"""How the approximate index was chosen: hnswlib, usearch and faiss HNSW at the same graph parameters.

Not part of `make bench` (it needs `pip install hnswlib usearch faiss-cpu`); run once with
`python -m bench.ann_choice 100000`. Figures and the choice: docs/performance.md, "Face recognition".
"""

from __future__ import annotations

import sys
import time

import numpy as np

from bench.recognition import synthetic_gallery

#: Graph degree, build and search candidates: the same for every library.
M, EF_CONSTRUCTION, EF_SEARCH = 16, 100, 64


def main() -> None:
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 100_000
    matrix, centres = synthetic_gallery(n)
    x, subject = matrix.vectors, matrix.face_subject
    rng = np.random.default_rng(0)
    queries = (centres[rng.integers(0, len(centres), 200)] + rng.normal(size=(200, x.shape[1])) * 0.022).astype(np.float32)
    truth = np.array([subject[int(np.argmin(matrix.norms - 2 * x @ q))] for q in queries])

    def report(name, build, query):
        t0 = time.perf_counter()
        index = build()
        built = time.perf_counter() - t0
        times, got = [], []
        for q in queries:
            t0 = time.perf_counter()
            got.append(subject[query(index, q)])
            times.append(time.perf_counter() - t0)
        print(f"{name}: build {built:.1f} s, p50 {np.percentile(times, 50) * 1e3:.3f} ms, "
              f"p99 {np.percentile(times, 99) * 1e3:.3f} ms, recall@1 {np.mean(np.array(got) == truth):.3f}", flush=True)  # fmt: skip

    import faiss
    import hnswlib
    from usearch.index import Index

    def hnswlib_build():
        i = hnswlib.Index(space="l2", dim=x.shape[1])
        i.init_index(max_elements=n, M=M, ef_construction=EF_CONSTRUCTION)
        i.add_items(x, np.arange(n))
        i.set_ef(EF_SEARCH)
        return i

    def usearch_build():
        i = Index(ndim=x.shape[1], metric="l2sq", dtype="f32", connectivity=M, expansion_add=EF_CONSTRUCTION,
                  expansion_search=EF_SEARCH)  # fmt: skip
        i.add(np.arange(n), x)
        return i

    def faiss_build():
        i = faiss.IndexHNSWFlat(x.shape[1], M)
        i.hnsw.efConstruction = EF_CONSTRUCTION
        i.add(x)
        i.hnsw.efSearch = EF_SEARCH
        return i

    report("hnswlib", hnswlib_build, lambda i, q: int(i.knn_query(q[None], k=1)[0][0, 0]))
    report("usearch", usearch_build, lambda i, q: int(i.search(q, 1).keys[0]))
    report("faiss", faiss_build, lambda i, q: int(i.search(q[None], 1)[1][0, 0]))


if __name__ == "__main__":
    main()
