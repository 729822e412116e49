"""Exact CMC / AP / INP from the ranks of each query's true matches, computed without sorting the gallery.

A true match's 0-based rank among the valid gallery items is the number of valid negatives ranked before it plus
the number of true matches ranked before it. With each query's true matches sorted, counting the negatives of each
distance block that precede each match (`rank_count`) gives the ranks: memory stays at one distance block however
large the gallery (Market-1501 + 500k distractors). Ties are broken by gallery order, as a stable sort of the full
row would. Per-query bookkeeping is held as CSR arrays (a pointer per query into one flat array), never as Python
loops over queries.
"""
from __future__ import annotations

from typing import Callable, Iterable, Optional, Tuple

import numpy as np
import torch

from ..config.schema import CHOICES
from .rank_count import MAX_WIDTH, count_block

JUNK = -1
AP_KINDS = CHOICES["test.ap"]  # the AP definitions (`_segment_ap`; the config's test.ap values)
EMPTY_POLICIES = CHOICES["test.empty"]  # queries without a true match: skipped or counted as AP 0 (test.empty)


def expected(name: str, options: Iterable[str], value: object) -> str:
    """The refusal of an option value: "name: expected 'a' or 'b', got 'c'"."""
    return f"{name}: expected {' or '.join(map(repr, options))}, got {value!r}"


def _segment_ap(ranks: np.ndarray, ptr: np.ndarray, kind: str) -> np.ndarray:
    """AP of each non-empty segment ranks[ptr[i]:ptr[i+1]] (sorted 0-based ranks of one query's n true matches).

    mean: (1/n) sum_k k / (r_k + 1), the mean of precision at each hit (what recent papers report).
    official: the Market-1501 MATLAB trapezoid, (1/n) sum_k ((k-1)/r_k + k/(r_k+1)) / 2 with (k-1)/r_k = 1 at r_k = 0.
    """
    if kind not in AP_KINDS:
        raise ValueError(expected("ap", AP_KINDS, kind))
    sizes = np.diff(ptr)
    k = (np.arange(len(ranks)) - np.repeat(ptr[:-1], sizes) + 1).astype(np.float64)
    r = ranks.astype(np.float64)
    terms = k / (r + 1)
    if kind == "official":
        terms = (np.where(r == 0, 1.0, (k - 1) / np.maximum(r, 1)) + terms) / 2
    filled = sizes > 0
    return np.add.reduceat(terms, ptr[:-1][filled]) / sizes[filled] if filled.any() else np.zeros(0)


def average_precision(ranks: np.ndarray, kind: str = "mean") -> float:
    """AP of a query whose true matches sit at sorted 0-based ranks `ranks` (see `_segment_ap` for both kinds)."""
    return float(_segment_ap(np.asarray(ranks), np.array([0, len(ranks)]), kind)[0])


class RankAccumulator:
    """Collects per-query match ranks and turns them into CMC / mAP / mINP."""

    def __init__(self, max_rank: int, ap: str, empty: str) -> None:
        if empty not in EMPTY_POLICIES:
            raise ValueError(expected("empty", EMPTY_POLICIES, empty))
        if ap not in AP_KINDS:
            raise ValueError(expected("ap", AP_KINDS, ap))
        self.max_rank, self.ap, self.empty = int(max_rank), ap, empty
        self.first_hits = np.zeros(self.max_rank, dtype=np.int64)  # queries whose first match is at each rank
        self.ap_sum = self.inp_sum = 0.0
        self.counted = self.skipped = 0

    def add(self, ranks: np.ndarray, ptr: np.ndarray) -> None:
        """Add the queries of one CSR block: ranks[ptr[i]:ptr[i+1]] are query i's sorted match ranks."""
        sizes = np.diff(ptr)
        filled = sizes > 0
        empty = int((~filled).sum())
        self.skipped += empty
        if self.empty == "zero":
            self.counted += empty  # counts as AP 0 and no hit, as the official code divides by every query
        self.counted += int(filled.sum())
        first = ranks[ptr[:-1][filled]]
        self.first_hits += np.bincount(first[first < self.max_rank], minlength=self.max_rank)
        self.ap_sum += float(_segment_ap(ranks, ptr, self.ap).sum())
        self.inp_sum += float((sizes[filled] / (ranks[ptr[1:][filled] - 1] + 1)).sum())

    def result(self, info: Optional[dict] = None):
        from .report import EvaluationResult

        if self.counted == 0:
            raise ValueError(f"no query has a valid gallery match ({self.skipped} queries skipped)")
        return EvaluationResult(cmc=np.cumsum(self.first_hits) / self.counted, mAP=self.ap_sum / self.counted,
                                mINP=self.inp_sum / self.counted, num_queries=self.counted,
                                num_skipped=self.skipped, info=dict(info or {}))


def _csr(sizes: np.ndarray) -> np.ndarray:
    return np.concatenate([[0], np.cumsum(sizes)]).astype(np.int64)


def own_id_items(q_pids: np.ndarray, g_pids: np.ndarray, q_camids: Optional[np.ndarray],
                 g_camids: Optional[np.ndarray], query_in_gallery: Optional[np.ndarray]):
    """Per query (CSR): the gallery items of its id (never negatives), and its true matches among them.

    Returns same_ptr, same_idx, pos_ptr, pos_idx. Same id and same camera are junk for the query; so is the query
    itself (`query_in_gallery[i]`); a junk query (pid -1) has neither.
    """
    order = np.argsort(g_pids, kind="stable")
    lo = np.searchsorted(g_pids[order], q_pids, "left")
    sizes = np.searchsorted(g_pids[order], q_pids, "right") - lo
    sizes[q_pids == JUNK] = 0
    same_ptr = _csr(sizes)
    same_idx = order[np.repeat(lo, sizes) + np.arange(same_ptr[-1]) - np.repeat(same_ptr[:-1], sizes)]
    owner = np.repeat(np.arange(len(q_pids)), sizes)
    keep = np.ones(len(same_idx), dtype=bool)
    if q_camids is not None:
        keep &= g_camids[same_idx] != q_camids[owner]
    if query_in_gallery is not None:
        keep &= same_idx != query_in_gallery[owner]
    return same_ptr, same_idx, _csr(np.bincount(owner[keep], minlength=len(q_pids))), same_idx[keep]


PositiveDistances = Callable[[np.ndarray, np.ndarray], np.ndarray]


def count_ranks(q_pids: np.ndarray, g_pids: np.ndarray, q_camids: Optional[np.ndarray],
                g_camids: Optional[np.ndarray], query_in_gallery: Optional[np.ndarray],
                query_blocks: Iterable[Tuple[slice, PositiveDistances, Iterable[Tuple[slice, torch.Tensor]]]],
                acc: RankAccumulator) -> None:
    """Feed `acc` with every query's match ranks.

    `query_blocks` yields, per query slice, a function giving the distances of (row in the slice, gallery index)
    pairs, and an iterator of (gallery slice, (B, Gc) distance block).
    """
    same_ptr, same_idx, pos_ptr, pos_idx = own_id_items(q_pids, g_pids, q_camids, g_camids, query_in_gallery)
    notjunk = (g_pids != JUNK).astype(np.uint8)
    qig = np.full(len(q_pids), -1, np.int64) if query_in_gallery is None else query_in_gallery
    for qsl, pos_distances, blocks in query_blocks:
        s, e = qsl.start, qsl.stop
        b_same_ptr, b_same_idx = same_ptr[s:e + 1] - same_ptr[s], same_idx[same_ptr[s]:same_ptr[e]]
        b_pos_ptr, b_pos_idx = pos_ptr[s:e + 1] - pos_ptr[s], pos_idx[pos_ptr[s]:pos_ptr[e]]
        owner = np.repeat(np.arange(e - s), np.diff(b_pos_ptr))
        dpos = np.asarray(pos_distances(owner, b_pos_idx))
        order = np.lexsort((b_pos_idx, dpos, owner))  # each query's true matches by (distance, gallery index)
        b_pos_idx, dpos = np.ascontiguousarray(b_pos_idx[order]), dpos[order]
        counts = np.zeros(len(b_pos_idx), dtype=np.int64)
        for gsl, block in blocks:
            block = np.asarray(block.cpu() if isinstance(block, torch.Tensor) else block)
            block = np.ascontiguousarray(block if block.dtype == np.float64 else block.astype(np.float32, copy=False))
            for c in range(0, block.shape[1], MAX_WIDTH):
                piece = np.ascontiguousarray(block[:, c:c + MAX_WIDTH])
                bad = count_block(piece, gsl.start + c, notjunk, b_same_ptr, b_same_idx, qig[s:e], b_pos_ptr,
                                  b_pos_idx, dpos.astype(piece.dtype), counts)
                if bad:
                    raise ValueError(f"distances of queries {s}..{e - 1} contain {bad} NaN or inf values")
        acc.add(counts + np.arange(len(counts)) - np.repeat(b_pos_ptr[:-1], np.diff(b_pos_ptr)), b_pos_ptr)
