"""The one top-k order of a gallery for a query, used by every ranking a person looks at: `reid.search` and the
demo (`reid.inference.search_backends`), and the rank-list images of tools/test.py and of training.

Candidates come from the evaluation's float32 distance (`distance.pairwise_distance`) with a margin of extra ones
(every item within the (k + extra)-th distance, so a group of ties is never cut), and their order is then settled
in float64, ties by gallery index. Float32 distances of high-dimensional features crowd together closer than
float32 can separate: without the float64 step two correct implementations (ours, faiss's BLAS) disagree on
near-ties, and so did the rank-list PNGs and the demo before both used this module.

The evaluation's CMC / mAP (`ranking.evaluate`) counts ranks from the float32 distances and does not use it.
"""
from __future__ import annotations

from typing import Tuple, Union

import numpy as np
import torch

from . import distance  # looked up at call time: the evaluation's formula, whatever replaced it (the tests)

ArrayLike = Union[np.ndarray, torch.Tensor]


def as_numpy(x: ArrayLike) -> np.ndarray:
    """A tensor's values as a CPU numpy array (an array is returned as it is)."""
    return x.detach().cpu().numpy() if isinstance(x, torch.Tensor) else np.asarray(x)


def exact_distances(query: np.ndarray, rows: np.ndarray, metric: str = "euclidean") -> np.ndarray:
    """float64 distances of one query (D,) to gallery rows (n, D): squared Euclidean, or 1 - cosine."""
    if metric == "euclidean":
        diff = rows.astype(np.float64) - query.astype(np.float64)[None]
        return np.einsum("ij,ij->i", diff, diff)
    if metric == "cosine":
        q = query.astype(np.float64)
        g = rows.astype(np.float64)
        # the float32 formula's normalisation (torch.nn.functional.normalize: eps 1e-12), in float64
        q = q / max(float(np.sqrt(q @ q)), 1e-12)
        g = g / np.maximum(np.sqrt(np.einsum("ij,ij->i", g, g)), 1e-12)[:, None]
        return 1 - g @ q
    raise ValueError(f"metric: expected one of {distance.METRICS}, got {metric!r}")


def refine(query: ArrayLike, gallery: ArrayLike, candidates: np.ndarray, k: int,
           metric: str = "euclidean") -> Tuple[np.ndarray, np.ndarray]:
    """Order each query's candidate gallery indices (-1 = none) by exact float64 distance, ties by index.

    Returns (Q, k) indices and float64 distances; rows with fewer than k candidates pad with -1 / inf.
    """
    q = as_numpy(query)
    g = gallery if isinstance(gallery, np.ndarray) else as_numpy(gallery)
    out_i = np.full((len(q), k), -1, dtype=np.int64)
    out_d = np.full((len(q), k), np.inf, dtype=np.float64)
    for r in range(len(q)):
        cand = np.unique(candidates[r][candidates[r] >= 0])  # sorted: a stable sort below breaks ties by index
        d = exact_distances(q[r], g[cand], metric)
        order = np.argsort(d, kind="stable")[:k]
        out_i[r, :len(order)], out_d[r, :len(order)] = cand[order], d[order]
    return out_i, out_d


def exact_topk(query: torch.Tensor, gallery: torch.Tensor, k: int, extra: int = 8, chunk: int = 256,
               metric: str = "euclidean") -> Tuple[np.ndarray, np.ndarray]:
    """(Q, min(k, G)) gallery indices and float64 distances, nearest first, ties by gallery index: float32
    candidates from the evaluation's distance (every item within the (k + extra)-th), then the float64 order."""
    q, g = query.float(), gallery.float()
    k = min(int(k), len(g))
    if k < 1:  # an empty gallery (e.g. every item left out by the protocol): nothing to rank
        return np.zeros((len(q), 0), dtype=np.int64), np.zeros((len(q), 0), dtype=np.float64)
    g_sq = distance.squared_norms(g) if metric == "euclidean" else None
    m = min(len(g), k + extra)
    idx, dist = [], []
    for s in range(0, len(q), chunk):
        d = distance.pairwise_distance(q[s:s + chunk], g, metric, g_sq)
        cut = torch.kthvalue(d, m, dim=1, keepdim=True).values if m < len(g) else d.max(1, keepdim=True).values
        mask = (d <= cut).cpu().numpy()
        width = int(mask.sum(1).max())
        cand = np.full((len(d), width), -1, dtype=np.int64)
        for r, row in enumerate(mask):
            hit = np.flatnonzero(row)
            cand[r, :len(hit)] = hit
        i, dd = refine(q[s:s + chunk], g, cand, k, metric)
        idx.append(i)
        dist.append(dd)
    return np.concatenate(idx), np.concatenate(dist)
