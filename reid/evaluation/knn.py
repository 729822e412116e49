"""Exact k nearest neighbours of a feature set (squared Euclidean), blockwise, with each row's farthest distance:
what k-reciprocal re-ranking needs, without an N x N matrix.

Each pair of blocks is computed once (the matrix is symmetric), updating the running candidates of its rows and,
transposed, of its columns. Candidates come from float32 distances, with a margin of extra ones; their order is then
settled on float64 distances (ties by index), because high-dimensional distances crowd together closer than float32
can separate. On CPU with numba, the candidate updates and the float64 distances are compiled loops (an insertion
into a short sorted list, taken only when an item beats the current k-th best: most are rejected by one
comparison); on CUDA, or without numba, torch does both (top-k over the candidates and the block).
"""
from __future__ import annotations

from typing import Tuple

import numpy as np
import torch

from ._compiled import match_torch_threads, njit, numba
from .distance import pairwise_distance, squared_norms


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


def nearest_neighbours(x: torch.Tensor, k: int, chunk: int = 1024, extra: int = 8,
                       use_numba: bool = True) -> Tuple[np.ndarray, np.ndarray]:
    """(N, k) indices of each row's k nearest rows (itself included, first), nearest first with ties broken by
    index, and each row's maximum squared distance (N,)."""
    n = len(x)
    m = min(n, k + extra)
    sq = squared_norms(x)
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
    for s in range(0, n, chunk):
        e = min(n, s + chunk)
        for t in range(s, n, chunk):
            f = min(n, t + chunk)
            d = pairwise_distance(x[s:e], x[t:f], "euclidean", sq[t:f])
            if t == s:
                d.fill_diagonal_(0)  # exact self-distance
            if compiled:
                block = d.numpy()
                _merge_rows_numba(block, t, bd[s:e], bi[s:e], rm[s:e])
                if t != s:
                    _merge_columns_numba(block, s, bd[t:f], bi[t:f], rm[t:f])
            else:
                merge(slice(s, e), d, t)
                if t != s:
                    merge(slice(t, f), d.T, s)
    # settle the order on float64 distances, ties by index
    rows = np.repeat(np.arange(n), m)
    exact = torch.from_numpy(pair_sq_distances(x, rows, best_i.cpu().numpy().ravel(), use_numba).reshape(n, m))
    cand = best_i.cpu()
    by_index = torch.argsort(cand, dim=1)
    cand, exact = torch.gather(cand, 1, by_index), torch.gather(exact, 1, by_index)
    order = torch.argsort(exact, dim=1, stable=True)[:, :k]
    return torch.gather(cand, 1, order).numpy(), row_max.cpu().numpy()


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
