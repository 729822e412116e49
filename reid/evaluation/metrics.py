"""Exact CMC / AP / INP from the ranks of each query's true matches, computed without sorting the gallery.

A true match's 0-based rank among the valid gallery items is the number of valid negatives ranked before it plus
the number of true matches ranked before it. With each query's true matches sorted, every negative of a distance
block falls into one gap between consecutive matches (a binary search, no sort of the gallery), and the running
sum of the per-gap counts gives the ranks: memory stays at one distance block however large the gallery
(Market-1501 + 500k distractors). Ties are broken by gallery order, as a stable sort of the full row would.
"""
from __future__ import annotations

from typing import Callable, Dict, Iterable, List, Optional, Tuple

import numpy as np
import torch

JUNK = -1


def average_precision(ranks: np.ndarray, kind: str = "mean") -> float:
    """AP of a query whose n true matches sit at sorted 0-based ranks `ranks`.

    mean: (1/n) sum_k k / (r_k + 1), the mean of precision at each hit (what recent papers report).
    official: the Market-1501 MATLAB trapezoid, (1/n) sum_k ((k-1)/r_k + k/(r_k+1)) / 2 with (k-1)/r_k = 1 at r_k = 0.
    """
    n = len(ranks)
    k = np.arange(1, n + 1, dtype=np.float64)
    r = ranks.astype(np.float64)
    at_hit = k / (r + 1)
    if kind == "mean":
        return float(at_hit.mean())
    if kind == "official":
        above = np.where(r == 0, 1.0, (k - 1) / np.maximum(r, 1))
        return float(((above + at_hit) / 2).mean())
    raise ValueError(f"ap: expected 'mean' or 'official', got {kind!r}")


class RankAccumulator:
    """Collects per-query match ranks and turns them into CMC / mAP / mINP."""

    def __init__(self, max_rank: int, ap: str, empty: str) -> None:
        if empty not in ("skip", "zero"):
            raise ValueError(f"empty: expected 'skip' or 'zero', got {empty!r}")
        self.max_rank, self.ap, self.empty = int(max_rank), ap, empty
        self.hits = np.zeros(self.max_rank, dtype=np.int64)
        self.ap_sum = self.inp_sum = 0.0
        self.counted = self.skipped = 0

    def add(self, ranks: np.ndarray) -> None:
        if len(ranks) == 0:
            self.skipped += 1
            if self.empty == "zero":
                self.counted += 1  # counts as AP 0 and no hit, as the official code divides by every query
            return
        self.counted += 1
        if ranks[0] < self.max_rank:
            self.hits[ranks[0]:] += 1
        self.ap_sum += average_precision(ranks, self.ap)
        self.inp_sum += len(ranks) / (ranks[-1] + 1)

    def result(self, info: Optional[Dict] = None):
        from .report import EvaluationResult

        if self.counted == 0:
            raise ValueError(f"no query has a valid gallery match ({self.skipped} queries skipped)")
        return EvaluationResult(cmc=self.hits / self.counted, mAP=self.ap_sum / self.counted,
                                mINP=self.inp_sum / self.counted, num_queries=self.counted,
                                num_skipped=self.skipped, info=dict(info or {}))


def positives_and_validity(q_pids, g_pids, q_camids, g_camids, query_in_gallery):
    """Per-query true-match gallery indices, and a function giving the valid-negative mask of a gallery slice."""
    by_pid: Dict[int, np.ndarray] = {}
    for pid in np.unique(g_pids):
        by_pid[int(pid)] = np.flatnonzero(g_pids == pid)
    positives: List[np.ndarray] = []
    for i, pid in enumerate(q_pids):
        idx = by_pid.get(int(pid), np.zeros(0, np.int64)) if pid != JUNK else np.zeros(0, np.int64)
        if q_camids is not None:
            idx = idx[g_camids[idx] != q_camids[i]]  # same id + same camera: junk for this query
        if query_in_gallery is not None and query_in_gallery[i] >= 0:
            idx = idx[idx != query_in_gallery[i]]  # the query itself
        positives.append(idx)
    return positives


def count_ranks(q_pids: np.ndarray, g_pids: np.ndarray, q_camids: Optional[np.ndarray],
                g_camids: Optional[np.ndarray], query_in_gallery: Optional[np.ndarray],
                query_blocks: Iterable[Tuple[slice, Callable[[np.ndarray], np.ndarray],
                                             Iterable[Tuple[slice, torch.Tensor]]]],
                acc: RankAccumulator) -> None:
    """Feed `acc` with every query's match ranks.

    `query_blocks` yields, per query slice, a function giving the (B, P) distances of given gallery indices
    (padded with -1) and an iterator of (gallery slice, (B, Gc) distance block).
    """
    positives = positives_and_validity(q_pids, g_pids, q_camids, g_camids, query_in_gallery)
    g_pids_t = torch.as_tensor(g_pids)
    for qsl, pos_distances, blocks in query_blocks:
        qp = positives[qsl]
        b = len(qp)
        pmax = max(1, max(len(p) for p in qp))
        pos_idx = np.full((b, pmax), -1, dtype=np.int64)
        for i, p in enumerate(qp):
            pos_idx[i, :len(p)] = p
        dpos = np.asarray(pos_distances(pos_idx), dtype=np.float32)
        # True matches of each query sorted by (distance, gallery index); padding sorts last (+inf).
        order = np.lexsort((np.where(pos_idx >= 0, pos_idx, np.iinfo(np.int64).max),
                            np.where(pos_idx >= 0, dpos, np.inf)), axis=1)
        dpos = np.take_along_axis(np.where(pos_idx >= 0, dpos, np.inf), order, 1).astype(np.float32)
        pos_idx = np.take_along_axis(pos_idx, order, 1)
        dpos_t = torch.from_numpy(dpos)
        pos_idx_t = torch.from_numpy(pos_idx)
        # hist[b, j]: valid negatives that precede the j-th true match but not the (j-1)-th
        hist = torch.zeros(b, pmax + 1, dtype=torch.int64)
        qpid_t = torch.as_tensor(q_pids[qsl])[:, None]
        qig = None if query_in_gallery is None else torch.as_tensor(query_in_gallery[qsl])[:, None]
        for gsl, block in blocks:
            block = block.float().cpu().contiguous()
            gp = g_pids_t[gsl][None]
            valid_neg = (gp != JUNK) & (gp != qpid_t)
            if qig is not None:
                valid_neg &= torch.arange(gsl.start, gsl.stop)[None] != qig
            # a negative at distance d precedes exactly the true matches farther than d
            after = torch.searchsorted(dpos_t, block, right=True)
            hist.scatter_add_(1, after, valid_neg.to(torch.int64))
            # a tie: the true match just before the gap has exactly this distance (no second binary search)
            below = torch.gather(dpos_t, 1, (after - 1).clamp_min(0))
            tied = (after > 0) & (below == block) & valid_neg
            if tied.any():  # equal distances: gallery order decides (vectorised over all tied pairs)
                rows, cols = tied.nonzero(as_tuple=True)
                values = block[rows, cols][:, None]
                last = after[rows, cols]
                same = dpos_t[rows] == values  # the tied true matches of each pair's query
                later = same & (pos_idx_t[rows] > (cols + gsl.start)[:, None])
                move = later.sum(1)
                hist.index_put_((rows, last), -torch.ones_like(last), accumulate=True)
                hist.index_put_((rows, last - move), torch.ones_like(last), accumulate=True)
        neg_before = hist.cumsum(1)[:, :pmax]
        nb = neg_before.numpy()
        for i, p in enumerate(qp):
            n = len(p)
            acc.add(nb[i, :n] + np.arange(n) if n else np.zeros(0, np.int64))
