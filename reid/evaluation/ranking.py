"""`evaluate`: rank the gallery for every query (Market or single-shot protocol) and report CMC, mAP and mINP, with
distances streamed block by block from features (`distance.pairwise_distance`), read from a matrix, or re-ranked."""
from __future__ import annotations

from typing import Optional, Sequence, Union

import numpy as np
import torch

from ..config.schema import CHOICES
from .distance import check_features, distance_matrix, paired_distance, pairwise_distance, squared_norms
from .metrics import RankAccumulator, count_ranks, expected
from .protocols import single_shot_galleries
from .report import EvaluationResult
from .rerank import K1, K2, LAMBDA, iter_rerank_chunks, k_reciprocal_rerank

ArrayLike = Union[np.ndarray, torch.Tensor, Sequence[int]]
PROTOCOLS = CHOICES["test.protocol"]  # "market" and "single-shot" below (the config's test.protocol values)


def _labels(name: str, values: Optional[ArrayLike], n: int) -> Optional[np.ndarray]:
    if values is None:
        return None
    arr = np.asarray(values.cpu() if isinstance(values, torch.Tensor) else values).astype(np.int64).ravel()
    if len(arr) != n:
        raise ValueError(f"{name} has {len(arr)} entries but there are {n} features")
    return arr


def evaluate(qf: Optional[torch.Tensor], gf: Optional[torch.Tensor], q_pids: ArrayLike, g_pids: ArrayLike,
             q_camids: Optional[ArrayLike] = None, g_camids: Optional[ArrayLike] = None, *,
             distmat: Optional[Union[np.ndarray, torch.Tensor]] = None, metric: str = "euclidean",
             ap: str = "mean", empty: str = "skip", max_rank: int = 50, chunk_size: int = 512,
             gallery_chunk: int = 32768, protocol: str = "market", trials: int = 10, seed: int = 0,
             rerank: bool = False, k1: int = K1, k2: int = K2, lambda_value: float = LAMBDA,
             query_in_gallery: Optional[ArrayLike] = None, knn_backend: str = "exact") -> EvaluationResult:
    """Rank the gallery for every query and report CMC, mAP and mINP.

    Market protocol: gallery items with the query's id and camera, and junk (pid -1), are removed from the query's
    ranking; background (0) and distractors (-2) stay as negatives. Without camera ids only the query itself
    (`query_in_gallery[i]`, -1 if absent) is removed. `protocol="single-shot"`: per trial one random gallery image
    per identity, averaged over `trials`. Distances are streamed in blocks (`chunk_size` queries x
    `gallery_chunk` gallery items), or read from `distmat` (Q, G) when given. `knn_backend` ("exact" or "faiss")
    finds the re-ranking's neighbours; both give identical results.

    Args:
        qf, gf: query (Q, D) and gallery (G, D) features (tensors or arrays; None when `distmat` is given).
        q_pids, g_pids: person ids (Q,), (G,); -1 is junk, 0 background and -2 distractors are negatives.
        q_camids, g_camids: camera ids, both or neither (None: only the query itself is removed).
        distmat: a precomputed (Q, G) distance matrix instead of the features.
        metric: "euclidean" or "cosine"; ap: "mean" (every positive) or "official" (Market's devkit).
        empty: queries without a valid match are "skip"ped or count as "zero".
        max_rank: CMC length; protocol / trials / seed: "market" or "single-shot" sampling.
        rerank, k1, k2, lambda_value: k-reciprocal re-ranking (Zhong et al. 2017) and its parameters.
        query_in_gallery: gallery index of each query's own image (-1 if absent), for camera-less data.
    Returns:
        EvaluationResult: `cmc` (max_rank,), `mAP`, `mINP`, `num_queries`, `num_skipped`; `rank(k)`, `table()`,
        `to_dict()`, `save_json(path)`.
    """
    if distmat is None:
        if qf is None or gf is None:
            raise ValueError("evaluate: give query and gallery features, or a distance matrix")
        qf, gf = check_features("query", qf), check_features("gallery", gf)
        if qf.shape[1] != gf.shape[1]:
            raise ValueError(f"query features are {qf.shape[1]}-d but gallery features are {gf.shape[1]}-d")
        nq, ng = len(qf), len(gf)
    else:
        distmat = torch.as_tensor(np.asarray(distmat) if not isinstance(distmat, torch.Tensor) else distmat)
        if distmat.ndim != 2 or distmat.numel() == 0:
            raise ValueError(f"distmat must be a non-empty (Q, G) matrix, got shape {tuple(distmat.shape)}")
        nq, ng = distmat.shape
    q_pids, g_pids = _labels("q_pids", q_pids, nq), _labels("g_pids", g_pids, ng)
    q_camids, g_camids = _labels("q_camids", q_camids, nq), _labels("g_camids", g_camids, ng)
    if (q_camids is None) != (g_camids is None):
        raise ValueError("give camera ids for both query and gallery, or for neither")
    qig = _labels("query_in_gallery", query_in_gallery, nq)
    info = {"protocol": protocol, "ap": ap, "metric": metric, "rerank": bool(rerank), "gallery_size": ng}

    if protocol == "single-shot":
        return _single_shot(qf, gf, distmat, q_pids, g_pids, q_camids, g_camids, qig, metric=metric, ap=ap,
                            empty=empty, max_rank=max_rank, trials=trials, seed=seed, rerank=rerank, k1=k1, k2=k2,
                            lambda_value=lambda_value, info=info, knn_backend=knn_backend)
    if protocol != "market":
        raise ValueError(expected("protocol", PROTOCOLS, protocol))
    acc = RankAccumulator(max_rank, ap, empty)
    if rerank and distmat is None:
        blocks = ((qsl, _gather_rows(torch.from_numpy(block)), [(slice(0, ng), torch.from_numpy(block))])
                  for qsl, block in iter_rerank_chunks(qf, gf, k1, k2, lambda_value, query_chunk=chunk_size,
                                                        knn_backend=knn_backend))
    elif distmat is not None:
        blocks = _matrix_blocks(distmat, chunk_size, gallery_chunk)
    else:
        blocks = _feature_blocks(qf, gf, metric, chunk_size, gallery_chunk)
    count_ranks(q_pids, g_pids, q_camids, g_camids, qig, blocks, acc)
    return acc.result(info)


def _gather_rows(rows: torch.Tensor):
    def pos(row: np.ndarray, idx: np.ndarray) -> np.ndarray:
        return rows[torch.from_numpy(row), torch.from_numpy(idx)].numpy()

    return pos


def _matrix_blocks(distmat: torch.Tensor, chunk: int, gallery_chunk: int):
    nq, ng = distmat.shape
    for s in range(0, nq, chunk):
        rows = distmat[s:s + chunk].cpu()  # NaN / inf are reported by the rank counting
        rows = rows if rows.dtype == torch.float64 else rows.float()  # float64 stays exact
        yield (slice(s, s + len(rows)), _gather_rows(rows),
               ((slice(g, min(g + gallery_chunk, ng)), rows[:, g:g + gallery_chunk])
                for g in range(0, ng, gallery_chunk)))


def _feature_blocks(qf: torch.Tensor, gf: torch.Tensor, metric: str, chunk: int, gallery_chunk: int):
    ng = len(gf)
    g_norms = squared_norms(gf) if metric == "euclidean" else None  # once, not once per query block
    norms = (lambda sl: None) if g_norms is None else (lambda sl: g_norms[sl])  # noqa: E731
    for s in range(0, len(qf), chunk):
        q = qf[s:s + chunk]

        def pos(row: np.ndarray, idx: np.ndarray, q=q) -> np.ndarray:
            # only the (query, true match) pairs: a few per query, not a block against every match of the chunk
            idx_t = torch.from_numpy(idx).to(gf.device)
            return paired_distance(q[torch.from_numpy(row).to(q.device)], gf[idx_t], metric,
                                   norms(idx_t)).cpu().numpy()

        yield (slice(s, s + len(q)), pos,
               ((slice(g, min(g + gallery_chunk, ng)),
                 pairwise_distance(q, gf[g:g + gallery_chunk], metric, norms(slice(g, g + gallery_chunk))))
                for g in range(0, ng, gallery_chunk)))


def _single_shot(qf, gf, distmat, q_pids, g_pids, q_camids, g_camids, qig, *, metric, ap, empty, max_rank, trials,
                 seed, rerank, k1, k2, lambda_value, info, knn_backend="exact") -> EvaluationResult:
    if distmat is None:
        distmat = (torch.from_numpy(k_reciprocal_rerank(qf, gf, k1, k2, lambda_value, knn_backend=knn_backend))
                   if rerank else distance_matrix(qf, gf, metric))
    results = []
    for keep in single_shot_galleries(g_pids, trials, seed):
        results.append(evaluate(None, None, q_pids, g_pids[keep], q_camids,
                                None if g_camids is None else g_camids[keep], distmat=distmat[:, keep], ap=ap,
                                empty=empty, max_rank=max_rank, metric=metric))
    mean = lambda attr: float(np.mean([getattr(r, attr) for r in results]))  # noqa: E731
    return EvaluationResult(cmc=np.mean([r.cmc for r in results], axis=0), mAP=mean("mAP"), mINP=mean("mINP"),
                            num_queries=results[0].num_queries, num_skipped=results[0].num_skipped,
                            info={**info, "trials": trials, "seed": seed})
