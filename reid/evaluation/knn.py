"""Exact k nearest neighbours of a feature set (squared Euclidean), blockwise, with each row's farthest distance:
what k-reciprocal re-ranking needs, without an N x N matrix.

Each pair of blocks is computed once (the matrix is symmetric), updating the running candidates of its rows and,
transposed, of its columns. Candidates come from float32 distances, with a margin of extra ones; their order is then
settled on float64 distances (ties by index), because high-dimensional distances crowd together closer than float32
can separate. On CPU with numba, the candidate updates and the float64 distances are compiled loops (an insertion
into a short sorted list, taken only when an item beats the current k-th best: most are rejected by one
comparison); on CUDA, or without numba, torch does both (top-k over the candidates and the block).

Rows whose margin is crowded (more near-ties than extra candidates) are widened by one more pass over all rows.
`backend="faiss"` (the `faiss` extra) takes the candidates from an exact flat faiss index instead and widens and
settles them with the same steps, so both backends return the same lists; the row maxima, which faiss cannot
search for, come from `row_maxima` over the same float32 blocks as ours, so re-ranking weights are identical too.
"""
from __future__ import annotations

from typing import Any, Iterator, Tuple

import numpy as np
import torch

from ..utils.optional import import_faiss
from ._compiled import match_torch_threads, njit, numba
from .distance import pairwise_distance, squared_norms

KNN_BACKENDS = ("exact", "faiss")


def _compiled(x: torch.Tensor, use_numba: bool) -> bool:
    if use_numba and numba is not None and x.device.type == "cpu":
        match_torch_threads()
        return True
    return False


def pair_sq_distances(x: torch.Tensor, a: np.ndarray, b: np.ndarray, use_numba: bool = True,
                      chunk: int = 65536) -> np.ndarray:
    """float64 ||x[a[p]] - x[b[p]]||^2 for every pair p (differences of float32 values are exact in float64)."""
    if _compiled(x, use_numba):
        out = np.empty(len(a), dtype=np.float64)
        _pair_sq_distances_numba(x.float().contiguous().numpy(), np.ascontiguousarray(a, np.int64),
                                 np.ascontiguousarray(b, np.int64), out)
        return out
    parts = []
    for s in range(0, len(a), chunk):
        ia = torch.from_numpy(np.asarray(a[s:s + chunk])).to(x.device)
        ib = torch.from_numpy(np.asarray(b[s:s + chunk])).to(x.device)
        parts.append((x[ia].double() - x[ib].double()).pow(2).sum(1).cpu().numpy())
    return np.concatenate(parts) if parts else np.zeros(0)


def _settle(x: torch.Tensor, cand: np.ndarray, k: int, use_numba: bool) -> np.ndarray:
    """The first k of each row's candidates (N, m) in float64 distance order, ties by index: one rule for every
    backend, so their lists agree whenever their candidates hold the true k nearest. -1 pads a row (sorted last)."""
    n, m = cand.shape
    rows = np.repeat(np.arange(n), m)
    exact = pair_sq_distances(x, rows, np.maximum(cand, 0).ravel(), use_numba).reshape(n, m)
    exact = torch.from_numpy(np.where(cand < 0, np.inf, exact))
    cand_t = torch.from_numpy(np.ascontiguousarray(cand, dtype=np.int64))
    by_index = torch.argsort(cand_t, dim=1)
    cand_t, exact = torch.gather(cand_t, 1, by_index), torch.gather(exact, 1, by_index)
    order = torch.argsort(exact, dim=1, stable=True)[:, :k]
    return torch.gather(cand_t, 1, order).numpy()


def row_maxima(x: torch.Tensor, chunk: int = 1024) -> np.ndarray:
    """Each row's maximum squared distance (N,), from the very float32 blocks `nearest_neighbours` computes (same
    block pairs, same transposition), so it equals that function's row maxima bit for bit."""
    row_max = torch.zeros(len(x), device=x.device)
    for (s, e), (t, f), d in _symmetric_blocks(x, chunk):
        row_max[s:e] = torch.maximum(row_max[s:e], d.max(1).values)
        if t != s:
            row_max[t:f] = torch.maximum(row_max[t:f], d.max(0).values)
    return row_max.cpu().numpy()


Span = Tuple[int, int]


def _symmetric_blocks(x: torch.Tensor, chunk: int) -> Iterator[Tuple[Span, Span, torch.Tensor]]:
    """The upper block triangle of the squared distance matrix: ((s, e), (t, f), float32 block) with t >= s; a
    block on the diagonal gets exact zeros for the self-distances. Each block stands for itself and its transpose."""
    n = len(x)
    sq = squared_norms(x)
    for s in range(0, n, chunk):
        e = min(n, s + chunk)
        for t in range(s, n, chunk):
            f = min(n, t + chunk)
            d = pairwise_distance(x[s:e], x[t:f], "euclidean", sq[t:f])
            if t == s:
                d.fill_diagonal_(0)  # exact self-distance
            yield (s, e), (t, f), d


def widen_crowded(x: torch.Tensor, cand: np.ndarray, dist: np.ndarray, k: int, chunk: int = 256) -> np.ndarray:
    """Candidates (N, m) with float32 distances `dist` (ascending) -> candidates holding the true k nearest.

    A fixed margin of extra candidates fails when more of them than the margin lie within float32 rounding of the
    k-th distance (tie groups, near-ties): the cut through the group is then arbitrary and differs between
    libraries. Such crowded rows are compared with every row once more and keep every item within the k-th float32
    distance plus a rounding tolerance; -1 pads the other rows. Shared by both backends, so both stay identical.
    """
    n, m = cand.shape
    if m >= n:
        return cand
    sq = squared_norms(x)
    # float32 error of |a|^2 + |b|^2 - 2 a.b grows with the norms, not with the (possibly tiny) distance
    tol = 1e-5 * (sq.double().cpu().numpy() + float(sq.max()))
    crowded = np.flatnonzero(dist[:, -1].astype(np.float64) <= dist[:, k - 1].astype(np.float64) + tol)
    if len(crowded) == 0:
        return cand
    found = []
    for s in range(0, len(crowded), chunk):
        rows = crowded[s:s + chunk]
        d = pairwise_distance(x[torch.from_numpy(rows).to(x.device)], x, "euclidean", sq).cpu()
        d[torch.arange(len(rows)), torch.from_numpy(rows)] = 0
        cut = torch.kthvalue(d, k, dim=1).values.double().numpy() + 2 * tol[rows]
        found.extend(np.flatnonzero(row.double().numpy() <= c) for row, c in zip(d, cut))
    width = max(m, max(len(f) for f in found))
    out = np.full((n, width), -1, dtype=np.int64)
    out[:, :m] = cand
    for r, f in zip(crowded, found):
        out[r, :m] = -1
        out[r, :len(f)] = f
    return out


def faiss_candidates(x: torch.Tensor, k: int, extra: int = 8) -> np.ndarray:
    """(N, >= k) candidate neighbours of every row (-1 pads) from an exact flat faiss index over the rows
    themselves, `extra` more than k (faiss orders near-ties by its own float32 rounding), crowded rows widened."""
    faiss = import_faiss("re-ranking with knn_backend='faiss'")  # faiss only when asked for: an optional extra
    data = np.ascontiguousarray(x.detach().float().cpu().numpy())
    index = faiss.IndexFlatL2(data.shape[1])
    index.add(data)
    dist, cand = index.search(data, min(len(data), k + extra))
    return widen_crowded(x, cand.astype(np.int64), dist, k)


def nearest_neighbours(x: torch.Tensor, k: int, chunk: int = 1024, extra: int = 8,
                       use_numba: bool = True, backend: str = "exact") -> Tuple[np.ndarray, np.ndarray]:
    """(N, k) indices of each row's k nearest rows (itself included, first), nearest first with ties broken by
    index, and each row's maximum squared distance (N,). `backend`: "exact" (ours) or "faiss" (flat index, the
    `faiss` extra); both give the same lists."""
    if backend not in KNN_BACKENDS:
        raise ValueError(f"knn backend: expected one of {', '.join(KNN_BACKENDS)}, got {backend!r}")
    if backend == "faiss":
        cand = faiss_candidates(x, k, extra)
        return _settle(x, cand, k, use_numba), row_maxima(x, chunk)
    n = len(x)
    m = min(n, k + extra)
    compiled = _compiled(x, use_numba)
    best_d = torch.full((n, m), float("inf"), device=x.device)
    best_i = torch.zeros((n, m), dtype=torch.int64, device=x.device)
    row_max = torch.zeros(n, device=x.device)

    def merge(rows: slice, block: torch.Tensor, col_start: int) -> None:
        cols = torch.arange(col_start, col_start + block.shape[1], device=x.device).expand(len(block), -1)
        top = torch.topk(torch.cat([best_d[rows], block], 1), m, dim=1, largest=False)
        best_i[rows] = torch.gather(torch.cat([best_i[rows], cols], 1), 1, top.indices)
        best_d[rows] = top.values
        row_max[rows] = torch.maximum(row_max[rows], block.max(1).values)

    if compiled:  # numpy views: the compiled loops update the tensors in place
        bd, bi, rm = best_d.numpy(), best_i.numpy(), row_max.numpy()
    for (s, e), (t, f), d in _symmetric_blocks(x, chunk):
        if compiled:
            block = d.numpy()
            _merge_rows_numba(block, t, bd[s:e], bi[s:e], rm[s:e])
            if t != s:
                _merge_columns_numba(block, s, bd[t:f], bi[t:f], rm[t:f])
        else:
            merge(slice(s, e), d, t)
            if t != s:
                merge(slice(t, f), d.T, s)
    cand = widen_crowded(x, best_i.cpu().numpy(), best_d.cpu().numpy(), k)
    return _settle(x, cand, k, use_numba), row_max.cpu().numpy()


if numba is not None:
    @numba.njit(inline="always")
    def _insert(bd, bi, v, i):  # pragma: no cover - compiled
        # v beats the last entry: shift the worse ones right; equal values keep their earlier place
        p = len(bd) - 1
        while p > 0 and bd[p - 1] > v:
            bd[p] = bd[p - 1]
            bi[p] = bi[p - 1]
            p -= 1
        bd[p] = v
        bi[p] = i

    @njit(parallel=True)
    def _merge_rows_numba(block, col0, best_d, best_i, row_max):  # pragma: no cover - compiled
        rows, width = block.shape
        last = best_d.shape[1] - 1
        for r in numba.prange(rows):
            bd, bi = best_d[r], best_i[r]
            top = row_max[r]
            for c in range(width):
                v = block[r, c]
                top = max(top, v)
                if v < bd[last]:
                    _insert(bd, bi, v, col0 + c)
            row_max[r] = top

    @njit(parallel=True)
    def _merge_columns_numba(block, row0, best_d, best_i, col_max):  # pragma: no cover - compiled
        # the block's columns are the rows to update; each task streams the block row by row over 64 columns,
        # keeping those columns' candidate lists in cache (no transposed copy)
        rows, width = block.shape
        last = best_d.shape[1] - 1
        for task in numba.prange((width + 63) // 64):
            c0, c1 = task * 64, min(width, task * 64 + 64)
            for r in range(rows):
                for c in range(c0, c1):
                    v = block[r, c]
                    if v > col_max[c]:
                        col_max[c] = v
                    if v < best_d[c, last]:
                        _insert(best_d[c], best_i[c], v, row0 + r)

    @njit(parallel=True, fastmath={"reassoc"})
    def _pair_sq_distances_numba(x, a, b, out):  # pragma: no cover - compiled
        for p in numba.prange(len(a)):
            xa, xb = x[a[p]], x[b[p]]
            total = 0.0
            for j in range(x.shape[1]):
                diff = np.float64(xa[j]) - np.float64(xb[j])
                total += diff * diff
            out[p] = total
