"""k-reciprocal re-ranking (Zhong et al., CVPR 2017) from neighbour lists and a sparse V, never N x N.

Steps (methods.md): squared Euclidean distances over the N = Q + G samples, each row divided by its maximum (the
released code divides by column maxima then transposes, which is the same for a symmetric matrix); k-reciprocal
sets R(i, k1) from the k1 + 1 nearest neighbours; expansion with R(c, round(k1 / 2)) under the 2/3 rule; Gaussian
weights V; local query expansion over the k2 nearest; Jaccard distance of query rows to gallery rows; final
(1 - lambda) * jaccard + lambda * distance. Only top-k lists, a sparse V and query x gallery blocks are held.
Differences from the released code: float32 V instead of float16 (more exact); neighbour lists ordered on exact
float64 distances with ties broken by index (the released code's float32 argsort is neither exact nor stable).
"""
from __future__ import annotations

from typing import Iterator, Optional, Tuple

import numpy as np
import scipy.sparse as sp
import torch

from .distance import check_features


def _knn(x: torch.Tensor, k: int, chunk: int = 1024, extra: int = 8) -> Tuple[np.ndarray, np.ndarray]:
    """k nearest (incl. self) by squared Euclidean distance, and each row's maximum distance.

    Candidates come from float32 block distances; their order is then settled on exact float64 distances
    (ties by index), because high-dimensional distances crowd together closer than float32 can separate.
    """
    n = len(x)
    idx = np.empty((n, k), dtype=np.int64)
    row_max = np.empty(n, dtype=np.float32)
    sq = x.pow(2).sum(1)
    m = min(n, k + extra)
    for s in range(0, n, chunk):
        e = min(n, s + chunk)
        d = (sq[s:e, None] + sq[None] - 2 * x[s:e] @ x.T).clamp_min_(0)
        d[torch.arange(e - s), torch.arange(s, e)] = 0  # exact self-distance
        row_max[s:e] = d.max(1).values.cpu().numpy()
        cand = torch.topk(d, m, dim=1, largest=False).indices
        for r in range(s, e, 128):
            c = cand[r - s:min(e, r + 128) - s]
            exact = (x[r:r + len(c), None, :].double() - x[c].double()).pow(2).sum(-1)
            by_index = torch.argsort(c, dim=1)
            c, exact = torch.gather(c, 1, by_index), torch.gather(exact, 1, by_index)
            order = torch.argsort(exact, dim=1, stable=True)[:, :k]
            idx[r:r + len(c)] = torch.gather(c, 1, order).cpu().numpy()
    return idx, row_max


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
        for b in range(e - s):
            m = np.unique(members[b][members[b] >= 0])
            i = s + b
            d = (x[i][None] - x[torch.from_numpy(m)]).pow(2).sum(1).cpu().numpy().astype(np.float64) / row_max[i]
            w = np.exp(-d)
            rows.append(np.full(len(m), i))
            cols.append(m)
            vals.append(w / w.sum())
    return sp.csr_matrix((np.concatenate(vals), (np.concatenate(rows), np.concatenate(cols))), shape=(n, n))


def iter_rerank_chunks(qf: torch.Tensor, gf: torch.Tensor, k1: int = 20, k2: int = 6, lambda_value: float = 0.3,
                       knn: Optional[np.ndarray] = None, query_chunk: int = 256,
                       device: Optional[str] = None) -> Iterator[Tuple[slice, np.ndarray]]:
    """Yield (query slice, re-ranked (B, G) distances), one block of queries at a time.

    `knn` may be precomputed (N x >= max(k1 + 1, k2) neighbour indices over the concatenated query + gallery,
    nearest first, self included) by any k-NN library; the row maxima are then computed here in chunks.
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
        knn, row_max = _knn(x, k)
    else:
        knn = np.asarray(knn)[:, :k]
        _, row_max = _knn(x, 1)
    v = sparse_v(x, knn, row_max, k1)
    if k2 != 1:  # local query expansion: average V over the k2 nearest neighbours
        qe = sp.csr_matrix((np.full(n * k2, 1.0 / k2), (np.repeat(np.arange(n), k2), knn[:, :k2].ravel())),
                           shape=(n, n))
        v = (qe @ v).tocsr()
    vg = v[q:].tocsc()
    sq_g = gf.pow(2).sum(1)
    for s in range(0, q, query_chunk):
        e = min(q, s + query_chunk)
        m = np.zeros((e - s, len(gf)), dtype=np.float64)
        for b, i in enumerate(range(s, e)):
            row = v.getrow(i)
            sub = vg[:, row.indices]
            counts = np.diff(sub.indptr)
            mins = np.minimum(sub.data, np.repeat(row.data, counts))
            m[b] = np.bincount(sub.indices, weights=mins, minlength=len(gf))
        jaccard = 1 - m / (2 - m)
        d = (qf[s:e].pow(2).sum(1, keepdim=True) + sq_g[None] - 2 * qf[s:e] @ gf.T).clamp_min_(0)
        d = d.cpu().numpy().astype(np.float64) / row_max[s:e, None]
        yield slice(s, e), ((1 - lambda_value) * jaccard + lambda_value * d).astype(np.float32)


def k_reciprocal_rerank(qf: torch.Tensor, gf: torch.Tensor, k1: int = 20, k2: int = 6, lambda_value: float = 0.3,
                        knn: Optional[np.ndarray] = None) -> np.ndarray:
    """Re-ranked (Q, G) distance matrix (for small sets; use `iter_rerank_chunks` to stream large ones)."""
    out = np.empty((len(qf), len(gf)), dtype=np.float32)
    for qsl, block in iter_rerank_chunks(qf, gf, k1, k2, lambda_value, knn):
        out[qsl] = block
    return out
