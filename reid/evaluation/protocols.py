"""Evaluation protocols beyond the per-query ranking: single-shot CUHK trials, Recall@K and NMI."""
from __future__ import annotations

from typing import Dict, Sequence

import numpy as np
import torch

from .distance import check_features, pairwise_distance


def single_shot_galleries(g_pids: np.ndarray, trials: int, seed: int) -> list:
    """Per trial, one random gallery image per identity (seeded by (seed, trial))."""
    out = []
    ids = np.unique(g_pids[g_pids >= 0])
    for t in range(trials):
        rng = np.random.default_rng([seed, t])
        out.append(np.sort([rng.choice(np.flatnonzero(g_pids == pid)) for pid in ids]))
    return out


def recall_at_k(features: torch.Tensor, labels: Sequence[int], ks: Sequence[int] = (1, 2, 4, 8),
                metric: str = "euclidean", chunk: int = 1024) -> Dict[int, float]:
    """Recall@K of deep metric learning: query = every sample, gallery = all the others."""
    x = check_features("recall@k", torch.as_tensor(features)).float()
    labels = torch.as_tensor(np.asarray(labels))
    kmax = max(ks)
    hits = {k: 0 for k in ks}
    for s in range(0, len(x), chunk):
        d = pairwise_distance(x[s:s + chunk], x, metric)
        rows = torch.arange(len(d))
        d[rows, rows + s] = float("inf")  # exclude the query itself
        nn = torch.topk(d, kmax, dim=1, largest=False).indices
        same = labels[nn] == labels[s:s + chunk, None]
        for k in ks:
            hits[k] += int(same[:, :k].any(1).sum())
    return {k: hits[k] / len(x) for k in ks}


def kmeans(x: torch.Tensor, k: int, iters: int = 100, seed: int = 0) -> np.ndarray:
    """Lloyd's k-means with k-means++ seeding (deterministic given the seed)."""
    gen = torch.Generator().manual_seed(seed)
    x = x.float()
    centers = [x[torch.randint(len(x), (1,), generator=gen)].squeeze(0)]
    d2 = (x - centers[0]).pow(2).sum(1)
    for _ in range(1, k):
        probs = d2 / d2.sum() if d2.sum() > 0 else torch.full_like(d2, 1 / len(d2))
        c = x[torch.multinomial(probs, 1, generator=gen)].squeeze(0)
        centers.append(c)
        d2 = torch.minimum(d2, (x - c).pow(2).sum(1))
    c = torch.stack(centers)
    assign = None
    for _ in range(iters):
        new = torch.cdist(x, c).argmin(1)
        if assign is not None and torch.equal(new, assign):
            break
        assign = new
        for j in range(k):
            members = x[assign == j]
            if len(members):
                c[j] = members.mean(0)
    return assign.numpy()


def nmi(labels: Sequence[int], clusters: Sequence[int]) -> float:
    """Normalised mutual information, I(Y; C) / sqrt(H(Y) H(C))."""
    y, c = np.asarray(labels), np.asarray(clusters)
    _, yi = np.unique(y, return_inverse=True)
    _, ci = np.unique(c, return_inverse=True)
    joint = np.zeros((yi.max() + 1, ci.max() + 1))
    np.add.at(joint, (yi, ci), 1)
    p = joint / joint.sum()
    py, pc = p.sum(1), p.sum(0)
    nz = p > 0
    mi = float((p[nz] * np.log(p[nz] / (py[:, None] * pc[None])[nz])).sum())
    hy = -float((py[py > 0] * np.log(py[py > 0])).sum())
    hc = -float((pc[pc > 0] * np.log(pc[pc > 0])).sum())
    return mi / np.sqrt(hy * hc) if hy > 0 and hc > 0 else 0.0


def clustering_nmi(features: torch.Tensor, labels: Sequence[int], seed: int = 0) -> float:
    """NMI of k-means (as many clusters as classes) against the labels."""
    return nmi(labels, kmeans(torch.as_tensor(features), len(np.unique(labels)), seed=seed))
