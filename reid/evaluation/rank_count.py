"""The evaluator's inner loop: for every true match of a query, the valid negatives of a distance block ranked
before it.

A negative at gallery index g and distance v precedes the true match (t, i) when v < t, or v == t and g < i (ties go
by gallery order, as a stable sort of the row would). Both implementations take the same CSR description of a
block of queries and add into the same `counts` array:

- with numba (a dependency; compiled once, then cached on disk): per query row, the invalid items are masked to
  +inf, then one vectorised counting pass over the row per true match. Rows run on all cores.
- without numba (e.g. a machine where it cannot be installed): torch binary searches of each item among the
  query's sorted true matches, a histogram and a running sum.
"""
from __future__ import annotations

import numpy as np
import torch

from ._compiled import match_torch_threads, njit, numba

MAX_WIDTH = 1 << 22  # the numba counters are float32 sums of 0/1, exact up to 2**24 per pass


def count_block(block: np.ndarray, col0: int, notjunk: np.ndarray, same_ptr: np.ndarray, same_idx: np.ndarray,
                qig: np.ndarray, pos_ptr: np.ndarray, pos_i: np.ndarray, pos_d: np.ndarray, counts: np.ndarray,
                use_numba: bool = True) -> int:
    """Add to `counts[j]` the valid negatives of `block` that precede true match j; return the non-finite count.

    block: (B, W) distances of B queries to gallery items col0 .. col0 + W - 1 (float32 or float64, C order).
    notjunk: (G,) uint8, 1 for gallery items that may be negatives. same_ptr / same_idx: per query (CSR), the
    gallery items of its own id (never negatives). qig: (B,) the query's own gallery index or -1.
    pos_ptr / pos_i / pos_d: per query (CSR), its true matches' gallery indices and distances, sorted by
    (distance, index), with pos_d of the block's dtype.
    """
    if block.shape[1] > MAX_WIDTH:
        raise ValueError(f"count_block: a block is at most {MAX_WIDTH} columns wide, got {block.shape[1]}")
    if use_numba and numba is not None:
        match_torch_threads()
        return int(_count_block_numba(block, col0, notjunk, same_ptr, same_idx, qig, pos_ptr, pos_i, pos_d, counts))
    return _count_block_torch(block, col0, notjunk, same_ptr, same_idx, qig, pos_ptr, pos_i, pos_d, counts)


def _count_block_torch(block, col0, notjunk, same_ptr, same_idx, qig, pos_ptr, pos_i, pos_d, counts) -> int:
    rows, width = block.shape
    values = torch.from_numpy(block)
    bad = int((~torch.isfinite(values)).sum())
    masked = torch.where(torch.from_numpy(notjunk[col0:col0 + width]).bool()[None], values, float("inf"))
    own_row = np.repeat(np.arange(rows), np.diff(same_ptr))
    own_col = same_idx - col0
    own = (own_col >= 0) & (own_col < width)
    masked[torch.from_numpy(own_row[own]), torch.from_numpy(own_col[own])] = float("inf")
    self_col = qig - col0
    here = (qig >= 0) & (self_col >= 0) & (self_col < width)
    masked[torch.from_numpy(np.flatnonzero(here)), torch.from_numpy(self_col[here])] = float("inf")
    # true matches padded to (B, P); padding sorts last (+inf) so it never precedes a finite item
    sizes = np.diff(pos_ptr)
    pmax = max(1, int(sizes.max(initial=0)))
    pos_row = np.repeat(np.arange(rows), sizes)
    local = np.arange(len(pos_i)) - np.repeat(pos_ptr[:-1], sizes)
    thr = torch.full((rows, pmax), float("inf"), dtype=values.dtype)
    thr[pos_row, local] = torch.from_numpy(pos_d)
    idx = torch.full((rows, pmax), np.iinfo(np.int64).max, dtype=torch.int64)
    idx[pos_row, local] = torch.from_numpy(pos_i)
    # first[b, c]: the first true match this item precedes (those with distance <= v, unless tied and earlier)
    first = torch.searchsorted(thr, masked, right=True)
    below = torch.gather(thr, 1, (first - 1).clamp_min(0))
    tied = (first > 0) & (below == masked) & torch.isfinite(masked)
    if tied.any():
        r, c = tied.nonzero(as_tuple=True)
        v, g = masked[r, c][:, None], (c + col0)[:, None]
        first[r, c] = ((thr[r] < v) | ((thr[r] == v) & (idx[r] < g))).sum(1)
    hist = torch.zeros(rows, pmax + 1, dtype=torch.int64)
    hist.scatter_add_(1, first, torch.isfinite(masked).to(torch.int64))
    before = hist.cumsum(1)[:, :pmax].numpy()
    counts += before[pos_row, local]
    return bad


if numba is not None:
    @njit(fastmath={"reassoc"})
    def _count_before(masked, t, split):  # pragma: no cover - compiled
        # float32 partial sums over zero-based slices vectorise (integer sums, or loops starting at `split`, run
        # 2-4x slower); exact below 2**24
        head, tail = masked[:split], masked[split:]
        le = np.float32(0.0)
        for c in range(len(head)):
            le += np.float32(1.0) if head[c] <= t else np.float32(0.0)
        lt = np.float32(0.0)
        for c in range(len(tail)):
            lt += np.float32(1.0) if tail[c] < t else np.float32(0.0)
        return int(le) + int(lt)

    @njit(parallel=True)
    def _count_block_numba(block, col0, notjunk, same_ptr, same_idx, qig, pos_ptr, pos_i, pos_d,
                           counts):  # pragma: no cover - compiled
        rows, width = block.shape
        bad = 0
        for b in numba.prange(rows):
            row = block[b]
            masked = np.empty(width, block.dtype)
            nonfinite = 0
            for c in range(width):
                v = row[c]
                nonfinite += (v - v) != 0  # NaN and inf only
                masked[c] = v if notjunk[col0 + c] else np.inf
            for s in range(same_ptr[b], same_ptr[b + 1]):
                g = same_idx[s] - col0
                if 0 <= g < width:
                    masked[g] = np.inf
            g = qig[b] - col0
            if qig[b] >= 0 and 0 <= g < width:
                masked[g] = np.inf
            for j in range(pos_ptr[b], pos_ptr[b + 1]):
                # items before the match's own index win ties (<=), those after do not (<)
                split = min(max(pos_i[j] - col0, 0), width)
                counts[j] += _count_before(masked, pos_d[j], split)
            bad += nonfinite
        return bad
