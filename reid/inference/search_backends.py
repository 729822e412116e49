"""Nearest-gallery search backends for `reid.search` and the demo: exact (torch) and faiss (optional extra).

Every backend returns neighbours in one order (`reid.evaluation.topk`, also the order of the rank-list images):
exact float64 squared Euclidean distance, ties by gallery index.
Candidates come from float32 (or fp16-stored) distances with a margin of extra ones, and their order is then
settled in float64, because float32 distances of high-dimensional features crowd together closer than float32 can
separate: without this, two correct implementations (ours, faiss's BLAS) disagree on near-ties. Exact flat faiss
search therefore returns the same neighbours as the torch search; IVF and HNSW trade recall for speed on galleries
of millions (`benchmarks/faiss_search.py`). HNSW runs on PCA-reduced vectors (`reduce`, default 256 dims): a
graph over 2048-d vectors costs 8x more memory and distance work, and the exact re-ordering of the candidates in
the full dimension restores the order the reduction blurs.

faiss is imported only when a faiss backend is asked for: `pip install 'reid-toolkit[faiss]'` (faiss-cpu).
"""
from __future__ import annotations

import math
from typing import Optional, Tuple

import numpy as np

# the one top-k order (`exact_search` is its Euclidean form; `refine` settles faiss's candidates the same way)
from ..evaluation.topk import ArrayLike, as_numpy, exact_topk as exact_search, refine  # noqa: F401 (re-exported)
from ..utils.optional import faiss_available, import_faiss  # noqa: F401 (re-exported: reid.search's backends)

# The search backends (`reid.search`, the demo's --backend): "exact" (torch) and one per FaissIndex kind.
FAISS_KINDS = {"faiss": "flat", "faiss-ivf": "ivf", "faiss-hnsw": "hnsw"}
BACKENDS = ("exact", *FAISS_KINDS)


class FaissIndex:
    """A faiss index over gallery features: `kind="flat"` (exact), `"ivf"` (inverted lists) or `"hnsw"` (a graph
    over PCA-reduced vectors), the last two approximate.

    `fp16=True` stores IVF vectors as float16 (half the memory of float32; 1M x 2048-d is 4 GiB). The gallery
    array is kept by reference for the exact float64 refinement of the candidates. HNSW: `reduce` PCA dimensions
    (None = no reduction), `hnsw_m` links per node, `ef_search` the search breadth (recall vs time; the default 512
    gives recall@10 0.96 at 8 ms per query on a 1M x 2048-d gallery, 2 cores: BENCHMARKS.md "Large-gallery search").
    """

    def __init__(self, gallery: ArrayLike, kind: str = "flat", nlist: Optional[int] = None, nprobe: int = 32,
                 fp16: bool = True, extra: int = 8, seed: int = 0, add_chunk: int = 65536,
                 reduce: Optional[int] = 256, hnsw_m: int = 32, ef_search: int = 512) -> None:
        faiss = import_faiss()
        if kind not in FAISS_KINDS.values():
            raise ValueError(f"FaissIndex kind: expected 'flat', 'ivf' or 'hnsw', got {kind!r}")
        g = gallery if isinstance(gallery, np.ndarray) else as_numpy(gallery)
        if g.ndim != 2 or len(g) == 0:
            raise ValueError(f"FaissIndex: gallery features must be a non-empty (N, D) array, got {g.shape}")
        self.gallery, self.kind, self.extra = g, kind, int(extra)
        n, dim = g.shape
        self.pca = None
        if kind == "flat":
            self.index = faiss.IndexFlatL2(dim)
        elif kind == "hnsw":
            if reduce and reduce < dim:
                self.pca = faiss.PCAMatrix(dim, int(reduce))
                rng = np.random.default_rng(seed)
                sample = np.sort(rng.choice(n, size=min(n, 100_000), replace=False))
                self.pca.train(np.ascontiguousarray(g[sample], dtype=np.float32))
                dim = int(reduce)
            self.index = faiss.IndexHNSWFlat(dim, int(hnsw_m), faiss.METRIC_L2)
            self.index.hnsw.efSearch = int(ef_search)
            # the reduced space blurs near-ties: more candidates go to the exact re-ordering
            self.extra = max(self.extra, 4 * 10)
        else:
            # ~sqrt(N) lists: k-means training costs (points x lists x dim), so 1M x 2048-d trains in minutes on
            # 2 cores; each list keeps enough training points (faiss warns below 39 per centroid)
            self.nlist = int(nlist or min(max(1, int(math.sqrt(n))), max(1, n // 39)))
            quantizer = faiss.IndexFlatL2(dim)
            if fp16:
                self.index = faiss.IndexIVFScalarQuantizer(quantizer, dim, self.nlist, faiss.ScalarQuantizer.QT_fp16,
                                                           faiss.METRIC_L2)
            else:
                self.index = faiss.IndexIVFFlat(quantizer, dim, self.nlist, faiss.METRIC_L2)
            self._quantizer = quantizer  # faiss does not own it from Python: keep it alive
            rng = np.random.default_rng(seed)
            sample = np.sort(rng.choice(n, size=min(n, 50 * self.nlist), replace=False))
            self.index.train(np.ascontiguousarray(g[sample], dtype=np.float32))
            self.index.nprobe = int(min(nprobe, self.nlist))
        for s in range(0, n, add_chunk):  # float32 copies one chunk at a time (fp16 galleries stay fp16)
            self.index.add(self._vectors(g[s:s + add_chunk]))

    def _vectors(self, x: np.ndarray) -> np.ndarray:
        x = np.ascontiguousarray(x, dtype=np.float32)
        return x if self.pca is None else self.pca.apply_py(x)

    def search(self, query: ArrayLike, k: int, refine_exact: bool = True) -> Tuple[np.ndarray, np.ndarray]:
        """(Q, k) gallery indices and squared distances, nearest first (float64 exact distances when refined)."""
        q = np.ascontiguousarray(as_numpy(query), dtype=np.float32)
        k = min(int(k), len(self.gallery))
        m = min(len(self.gallery), k + self.extra) if refine_exact else k
        dist, idx = self.index.search(self._vectors(q), m)
        if not refine_exact:
            return idx.astype(np.int64), dist.astype(np.float64)
        return refine(q, self.gallery, idx.astype(np.int64), k)
