"""k-reciprocal re-ranking (Zhong et al., CVPR 2017) from neighbour lists and a sparse V, never N x N.

Steps (methods.md): squared Euclidean distances over the N = Q + G samples, each row divided by its maximum (the
released code divides by column maxima then transposes, which is the same for a symmetric matrix); k-reciprocal
sets R(i, k1) from the k1 + 1 nearest neighbours; expansion with R(c, round(k1 / 2)) under the 2/3 rule; Gaussian
weights V; local query expansion over the k2 nearest; Jaccard distance of query rows to gallery rows; final
(1 - lambda) * jaccard + lambda * distance. Only top-k lists, a sparse V and query x gallery blocks are held.
Differences from the released code: float64 V and Gaussian weights instead of float16 (more exact); neighbour lists
ordered on exact float64 distances with ties broken by index (the released code's float32 argsort is neither exact
nor stable). The k-NN lists come from `knn.py` (`knn_backend="faiss"`: an exact flat faiss index, same lists).
"""
from __future__ import annotations

from typing import Iterator, Optional, Tuple

import numpy as np
import scipy.sparse as sp
import torch

from ..config.schema import DEFAULTS
from .distance import check_features, pairwise_distance, squared_norms
from .knn import nearest_neighbours, pair_sq_distances, row_maxima

# Zhong et al.'s k1 = 20, k2 = 6, lambda = 0.3: the config's test.k1 / test.k2 / test.lambda_value, the one copy
K1, K2, LAMBDA = (DEFAULTS["test"][key] for key in ("k1", "k2", "lambda_value"))


def _reciprocal(knn: np.ndarray, k: int) -> np.ndarray:
    """R(i, k) padded with -1: members j of i's k+1 nearest whose own k+1 nearest contain i."""
    forward = knn[:, : k + 1]
    rows = np.arange(len(knn))[:, None, None]
    back = knn[forward][:, :, : k + 1]  # (N, k+1, k+1)
    keep = (back == rows).any(-1)
    return np.where(keep, forward, -1)


def sparse_v(x: torch.Tensor, knn: np.ndarray, row_max: np.ndarray, k1: int, chunk: int = 256) -> sp.csr_matrix:
    """V (N x N, sparse): Gaussian weights over each sample's expanded k-reciprocal set, rows summing to 1."""
    n = len(knn)
    r_full = _reciprocal(knn, k1)
    half = int(np.around(k1 / 2))
    r_half = _reciprocal(knn, half)
    size_half = (r_half >= 0).sum(1)
    rows, cols, vals = [], [], []
    for s in range(0, n, chunk):
        e = min(n, s + chunk)
        ri = r_full[s:e]  # (B, k1+1)
        cand = np.where(ri >= 0, ri, 0)
        rc = r_half[cand]  # (B, k1+1, half+1)
        inter = ((rc[..., None] == ri[:, None, None, :]) & (rc[..., None] >= 0)).any(-1).sum(-1)
        add = (ri >= 0) & (inter > 2.0 / 3.0 * size_half[cand])
        members = np.concatenate([ri, np.where(add[..., None], rc, -1).reshape(e - s, -1)], axis=1)
        members = np.sort(members, axis=1)  # the union R*: each row's distinct non-negative members
        keep = members >= 0
        keep[:, 1:] &= members[:, 1:] != members[:, :-1]
        r, c = np.nonzero(keep)
        m = members[r, c]
        w = np.exp(-pair_sq_distances(x, r + s, m) / row_max[r + s])
        rows.append(r + s)
        cols.append(m)
        vals.append(w / np.bincount(r, weights=w, minlength=e - s)[r])
    return sp.csr_matrix((np.concatenate(vals), (np.concatenate(rows), np.concatenate(cols))), shape=(n, n))


def _min_overlap(vq: sp.csr_matrix, vg: sp.csc_matrix) -> np.ndarray:
    """(B, G) sums over k of min(Vq[b, k], Vg[j, k]): every non-zero of a query row meets the gallery rows of its
    column (an inverted index, as in the released code), all pairs of the block expanded at once."""
    b_of = np.repeat(np.arange(vq.shape[0]), np.diff(vq.indptr))
    counts = np.diff(vg.indptr)[vq.indices]
    starts = np.repeat(vg.indptr[vq.indices] - np.cumsum(counts) + counts, counts)
    pos = starts + np.arange(counts.sum())
    mins = np.minimum(np.repeat(vq.data, counts), vg.data[pos])
    ng = vg.shape[0]
    flat = np.repeat(b_of, counts) * ng + vg.indices[pos]
    return np.bincount(flat, weights=mins, minlength=vq.shape[0] * ng).reshape(vq.shape[0], ng)


def iter_rerank_chunks(qf: torch.Tensor, gf: torch.Tensor, k1: int = K1, k2: int = K2, lambda_value: float = LAMBDA,
                       knn: Optional[np.ndarray] = None, query_chunk: int = 256,
                       device: Optional[str] = None, knn_backend: str = "exact") -> Iterator[Tuple[slice, np.ndarray]]:
    """Yield (query slice, re-ranked (B, G) distances), one block of queries at a time.

    `knn` may be precomputed (N x >= max(k1 + 1, k2) neighbour indices over the concatenated query + gallery,
    nearest first, self included) by any k-NN library; the row maxima are then computed here in chunks.
    Otherwise `knn_backend` finds them: "exact" (ours) or "faiss" (the `faiss` extra); the results are identical.
    """
    qf = check_features("query", qf).float()
    gf = check_features("gallery", gf).float()
    if qf.shape[1] != gf.shape[1]:
        raise ValueError(f"re-ranking: query features are {qf.shape[1]}-d but gallery features {gf.shape[1]}-d")
    x = torch.cat([qf, gf]).to(device or qf.device)
    n, q = len(x), len(qf)
    if not 1 <= k1 < n or not 1 <= k2 <= n:
        raise ValueError(f"re-ranking: need 1 <= k1 < N and 1 <= k2 <= N for N = {n} samples, got k1={k1}, k2={k2}")
    k = max(k1 + 1, k2)
    if knn is None:
        knn, row_max = nearest_neighbours(x, k, backend=knn_backend)
    else:
        knn = np.asarray(knn)[:, :k]
        row_max = row_maxima(x)
    v = sparse_v(x, knn, row_max, k1)
    if k2 != 1:  # local query expansion: average V over the k2 nearest neighbours
        qe = sp.csr_matrix((np.full(n * k2, 1.0 / k2), (np.repeat(np.arange(n), k2), knn[:, :k2].ravel())),
                           shape=(n, n))
        v = (qe @ v).tocsr()
    vg = v[q:].tocsc()
    sq_g = squared_norms(gf)
    for s in range(0, q, query_chunk):
        e = min(q, s + query_chunk)
        m = np.concatenate([_min_overlap(v[b:min(e, b + 64)], vg) for b in range(s, e, 64)])
        jaccard = 1 - m / (2 - m)
        d = pairwise_distance(qf[s:e], gf, "euclidean", sq_g).cpu().numpy().astype(np.float64) / row_max[s:e, None]
        yield slice(s, e), ((1 - lambda_value) * jaccard + lambda_value * d).astype(np.float32)


def k_reciprocal_rerank(qf: torch.Tensor, gf: torch.Tensor, k1: int = K1, k2: int = K2, lambda_value: float = LAMBDA,
                        knn: Optional[np.ndarray] = None, knn_backend: str = "exact") -> np.ndarray:
    """Re-ranked (Q, G) distance matrix (for small sets; use `iter_rerank_chunks` to stream large ones)."""
    out = np.empty((len(qf), len(gf)), dtype=np.float32)
    for qsl, block in iter_rerank_chunks(qf, gf, k1, k2, lambda_value, knn, knn_backend=knn_backend):
        out[qsl] = block
    return out
