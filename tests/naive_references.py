"""Naive reference implementations: the papers' equations written as plain loops, one entry at a time, against
which the tests check the vectorised losses, model parts and metrics (value and, where differentiable, gradient).

One home for every reference loop (issue #17): a test imports what it needs (`from naive_references import ...`;
tests/ is on sys.path through tests/conftest.py). Each loop exists once; keep them slow and obvious.
"""
from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
import torch
from torch.nn import functional as F

# The references read loss values that still carry gradients as Python floats, on purpose: torch warns about it.
float_of_grad_ok = pytest.mark.filterwarnings("ignore:Converting a tensor with requires_grad:UserWarning")


# ---------------------------------------------------------------- shared comparison harness
def pk_batch(p=4, k=3, d=5, seed=0, normalise=True):
    """A float64 P x K batch (rows L2-normalised unless told otherwise) that requires grad, and its labels."""
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(p * k, d, generator=g, dtype=torch.float64)
    if normalise:
        x = F.normalize(x, dim=1)
    return x.requires_grad_(True), torch.arange(p).repeat_interleave(k)


def dist(a, b, squared=False):
    """Euclidean (or squared) distance summed coordinate by coordinate."""
    d2 = sum((a[t] - b[t]) ** 2 for t in range(len(a)))
    return d2 if squared else torch.sqrt(d2)


def euclidean(a, b):
    return torch.sqrt(((a - b) ** 2).sum())


def assert_value_and_grad_match(fn, ref, x, *args):
    """fn(x, *args) and ref(x, *args) agree in value and in their gradient with respect to x."""
    a = fn(x, *args)
    ga, = torch.autograd.grad(a, x)
    b = ref(x, *args)
    gb, = torch.autograd.grad(b, x)
    assert float(a) == pytest.approx(float(b), rel=1e-9, abs=1e-10)
    torch.testing.assert_close(ga, gb, rtol=1e-7, atol=1e-9)


# ---------------------------------------------------------------- Support Neighbor (Li et al. MM'18, eqs. 3-5)
def naive_support_neighbor(x, labels, k=10, sigma=50.0, lam=0.1, squared=False, fallback=True):
    x = x.double()
    n = len(x)
    total = 0.0
    for i in range(n):
        dist = {}
        for j in range(n):
            if j != i:
                d2 = sum((x[i, c] - x[j, c]) ** 2 for c in range(x.shape[1]))
                dist[j] = d2 if squared else torch.sqrt(torch.clamp(d2, min=1e-12))
        ranked = sorted(dist, key=lambda j: float(dist[j].detach()))[: min(k, n - 1)]
        pos = [j for j in ranked if labels[j] == labels[i]]
        neg = [j for j in ranked if labels[j] != labels[i]]
        if not pos and fallback:
            same = [j for j in dist if labels[j] == labels[i]]
            if same:
                pos = [min(same, key=lambda j: float(dist[j].detach()))]
        term = 0.0
        if pos and neg:
            num = sum(torch.exp(-sigma * dist[j]) for j in pos)
            den = num + sum(torch.exp(-sigma * dist[j]) for j in neg)
            term = term - torch.log(num / den)
        if pos:
            term = term + lam * (max(dist[j] for j in pos) - min(dist[j] for j in pos))
        total = total + term
    return total / n


# ---------------------------------------------------------------- DarkRank (Chen, Wang, Zhang 2017, eqs. 2-5)
def naive_darkrank_scores(x, alpha, beta):
    n = len(x)
    s = [[None] * n for _ in range(n)]
    for i in range(n):
        for j in range(n):
            d2 = ((x[i] - x[j]) ** 2).sum()
            s[i][j] = -alpha * torch.clamp(d2, min=1e-12) ** (beta / 2)
    return s


def plackett_luce_prob(scores):
    """Product formula: prod_i exp(S_i) / sum_{j >= i} exp(S_j)."""
    p = 1.0
    for i in range(len(scores)):
        p = p * torch.exp(scores[i]) / sum(torch.exp(v) for v in scores[i:])
    return p


def teacher_list(ts, i, length):
    cands = [j for j in range(len(ts)) if j != i]
    cands.sort(key=lambda j: -float(ts[i][j].detach()))
    return cands[:length]


def naive_darkrank(student, teacher, mode, alpha=3.0, beta=3.0, length=None):
    """Hard (ListMLE) or soft (exact KL over every permutation) DarkRank; length None or "all": the whole list."""
    ss, ts = naive_darkrank_scores(student, alpha, beta), naive_darkrank_scores(teacher, alpha, beta)
    n = len(student)
    total = 0.0
    for i in range(n):
        cands = teacher_list(ts, i, n - 1 if length is None or length == "all" else length)
        if mode == "hard":
            total = total - torch.log(plackett_luce_prob([ss[i][j] for j in cands]))
            continue
        for perm in itertools.permutations(cands):
            pt = plackett_luce_prob([ts[i][j] for j in perm])
            ps = plackett_luce_prob([ss[i][j] for j in perm])
            total = total + pt * (torch.log(pt) - torch.log(ps))
    return total / n


# ---------------------------------------------------------------- Density adaptivity (Li et al. TMM'19, eqs. 5, 8)
def naive_density_adaptivity(x, labels, alpha, d0, eta=0.5):
    classes = [c for c in sorted(set(labels.tolist())) if (labels == c).sum() >= 2]
    dens = []
    for c in classes:
        members = [x[i] for i in range(len(x)) if labels[i] == c]
        mu = sum(members) / len(members)
        dens.append(sum(((f - mu) ** 2).sum() for f in members) / len(members))
    C = len(classes)
    first = sum((dens[k] - alpha[c]) ** 2 for k, c in enumerate(classes)) / C
    second = -sum(alpha[c] for c in classes) / C
    third = 0.0
    for i in classes:
        for j in classes:
            third = third + (d0[j] ** eta * alpha[i] - d0[i] ** eta * alpha[j]) ** 2
    return first + second + third / C ** 2


# ---------------------------------------------------------------- HRAML (Gu)
def naive_hraml(x, targets, attributes=False, reduction="mean", scale="range"):
    """1/4 sum_{i<j} (||u_i - u_j||^2 - g_ij)^2 with u = x / ||x||, g = ||y_i - y_j||_1 of one-hot labels or
    the L1 distance of attribute vectors (times 4/d for scale="range")."""
    u = [x[i] / torch.sqrt((x[i] ** 2).sum()) for i in range(len(x))]
    total, count = 0, 0
    for i in range(len(u)):
        for j in range(i + 1, len(u)):
            if attributes:
                g = sum(abs(targets[i, t] - targets[j, t]) for t in range(targets.shape[1]))
                g = g * 4 / targets.shape[1] if scale == "range" else g
            else:
                g = 0.0 if targets[i] == targets[j] else 2.0  # ||onehot_i - onehot_j||_1
            total = total + 0.25 * (((u[i] - u[j]) ** 2).sum() - g) ** 2
            count += 1
    return total / count if reduction == "mean" else total


# ---------------------------------------------------------------- HORDE (Jacob et al. ICCV'19, eqs. 6, 8)
def naive_horde_moments(fmap: torch.Tensor, projections: list) -> list:
    """Eq. 6/8 literally: at every position the product of the first k projections, then the spatial mean."""
    b, c, h, w = fmap.shape
    d = projections[0].shape[0]
    out = []
    for order in range(2, len(projections) + 1):
        moment = torch.zeros(b, d, dtype=fmap.dtype)
        for i in range(b):
            total = torch.zeros(d, dtype=fmap.dtype)
            for u in range(h):
                for v in range(w):
                    x = fmap[i, :, u, v]
                    product = torch.ones(d, dtype=fmap.dtype)
                    for k in range(order):
                        product = product * (projections[k] @ x)
                    total = total + product
            moment[i] = total / (h * w)
        out.append(moment)
    return out


# ---------------------------------------------------------------- Large-margin softmax (Liu et al. 2016, eq. 6)
def naive_large_margin_logits(x: torch.Tensor, w: torch.Tensor, labels: torch.Tensor, m: int,
                              beta: float) -> torch.Tensor:
    """Eq. 6 with the annealed target logit, one entry at a time (differentiable): W_j^T x for j != y; for y,
    psi(theta) = (-1)^k cos(m theta) - 2k with theta = acos(cos)."""
    rows = []
    for i in range(x.shape[0]):
        row = []
        for j in range(w.shape[0]):
            logit = (w[j] * x[i]).sum()
            if j == int(labels[i]):
                norms = w[j].norm() * x[i].norm()
                theta = torch.acos((logit / norms).clamp(-1, 1))
                k = min(int(math.floor(float(theta.detach()) * m / math.pi)), m - 1)
                psi = (-1) ** k * torch.cos(m * theta) - 2 * k
                logit = (beta * logit + norms * psi) / (1 + beta)
            row.append(logit)
        rows.append(torch.stack(row))
    return torch.stack(rows)


def naive_label_smoothing_ce(z, y, eps):
    """Cross-entropy against (1 - eps) one-hot + eps / C, sample by sample."""
    n, c = z.shape
    total = 0
    for i in range(n):
        logp = z[i] - torch.log(torch.exp(z[i]).sum())
        target = torch.full((c,), eps / c, dtype=z.dtype)
        target[y[i]] += 1 - eps
        total = total - (target * logp).sum()
    return total / n


# ---------------------------------------------------------------- distillation (Hinton et al. 2015; DarkRank eq. 7)
def naive_kd(s, t, T):
    """T^2 KL(softmax(t / T) || softmax(s / T)), averaged over the batch, on Python floats."""
    ref = 0.0
    for b in range(len(s)):
        zs = sum(math.exp(v / T) for v in s[b].tolist())
        zt = sum(math.exp(v / T) for v in t[b].tolist())
        for k in range(s.shape[1]):
            pt = math.exp(t[b, k].item() / T) / zt
            ps = math.exp(s[b, k].item() / T) / zs
            ref += pt * (math.log(pt) - math.log(ps))
    return ref / len(s) * T * T


def naive_direct_match(s, t):
    """Mean over ordered pairs i != j of (||s_i - s_j|| - ||t_i - t_j||)^2."""
    n = len(s)
    ref = 0.0
    for i in range(n):
        for j in range(n):
            if i != j:
                ref = ref + (torch.linalg.norm(s[i] - s[j]) - torch.linalg.norm(t[i] - t[j])) ** 2
    return ref / (n * (n - 1))


# ---------------------------------------------------------------- metric losses
def naive_triplet_batch_hard(x, y, margin, squared=False):
    """Batch-hard triplet (Hermans et al.): hardest positive and negative per anchor; margin "soft": softplus.
    squared=True: the squared distances of the density paper."""
    d = (lambda a, b: ((a - b) ** 2).sum()) if squared else euclidean
    total = 0
    n = len(x)
    for a in range(n):
        dp = max(d(x[a], x[p]) for p in range(n) if p != a and y[p] == y[a])
        dn = min(d(x[a], x[q]) for q in range(n) if y[q] != y[a])
        total = total + (F.softplus(dp - dn) if margin == "soft" else torch.clamp(dp - dn + margin, min=0))
    return total / n


def naive_triplet_batch_all(x, y, margin):
    vals = []
    n = len(x)
    for a in range(n):
        for p in range(n):
            for q in range(n):
                if p != a and y[p] == y[a] and y[q] != y[a]:
                    v = torch.clamp(euclidean(x[a], x[p]) - euclidean(x[a], x[q]) + margin, min=0)
                    if v.item() > 1e-12:
                        vals.append(v)
    return sum(vals) / len(vals)


def naive_contrastive(x, y, pos_margin, neg_margin):
    vals = []
    for i in range(len(x)):
        for j in range(len(x)):
            if i == j:
                continue
            d = euclidean(x[i], x[j])
            vals.append(torch.clamp(d - pos_margin, min=0) ** 2 if y[i] == y[j]
                        else torch.clamp(neg_margin - d, min=0) ** 2)
    return sum(vals) / len(vals)


def naive_contrastive_squared(x, y):
    """Li et al. TMM'19: D for positives and max(0, 1 - D) for negatives, D the squared Euclidean distance."""
    vals = []
    for i in range(len(x)):
        for j in range(len(x)):
            if i != j:
                d2 = ((x[i] - x[j]) ** 2).sum()
                vals.append(d2 if y[i] == y[j] else torch.clamp(1.0 - d2, min=0))
    return sum(vals) / len(vals)


def naive_npair(x, y, tuples=1, l2_reg=0.002):
    """N-pair (Sohn 2016): per tuple t, anchors are each class's image 2t and positives its image 2t + 1."""
    anchors_total, count, a_sq, p_sq = 0, 0, [], []
    members = {c: [i for i in range(len(y)) if y[i] == c] for c in sorted(set(y.tolist()))}
    for t in range(tuples):
        a = [x[m[2 * t]] for m in members.values()]
        p = [x[m[2 * t + 1]] for m in members.values()]
        for i in range(len(a)):
            anchors_total = anchors_total + torch.log(
                1 + sum(torch.exp(a[i] @ p[j] - a[i] @ p[i]) for j in range(len(a)) if j != i))
            count += 1
            a_sq.append((a[i] ** 2).sum())
            p_sq.append((p[i] ** 2).sum())
    return anchors_total / count + l2_reg * (sum(a_sq) / len(a_sq) + sum(p_sq) / len(p_sq))


def naive_binomial_deviance(x, y, alpha=2.0, beta=0.5, cost=25.0):
    u = F.normalize(x, dim=1)
    pos, neg = [], []
    for i in range(len(u)):
        for j in range(len(u)):
            if i == j:
                continue
            s = u[i] @ u[j]
            if y[i] == y[j]:
                pos.append(torch.log(1 + torch.exp(-alpha * (s - beta))))
            else:
                neg.append(torch.log(1 + torch.exp(alpha * cost * (s - beta))))
    return sum(pos) / len(pos) + sum(neg) / len(neg)


def naive_multi_similarity(x, y, a=2.0, b=50.0, lam=0.5, eps=0.1):
    u = F.normalize(x, dim=1)
    total = 0
    for i in range(len(u)):
        ps = [u[i] @ u[j] for j in range(len(u)) if j != i and y[j] == y[i]]
        ns = [u[i] @ u[j] for j in range(len(u)) if y[j] != y[i]]
        keep_n = [s for s in ns if s.item() + eps > min(p.item() for p in ps)]
        keep_p = [s for s in ps if s.item() - eps < max(n.item() for n in ns)]
        total = total + torch.log(1 + sum(torch.exp(-a * (s - lam)) for s in keep_p) + 0 * x.sum()) / a
        total = total + torch.log(1 + sum(torch.exp(b * (s - lam)) for s in keep_n) + 0 * x.sum()) / b
    return total / len(u)


# ---------------------------------------------------------------- pooling
def naive_gem(x: torch.Tensor, p: float) -> torch.Tensor:
    """Generalised-mean pooling (Radenovic et al.), channel by channel on Python floats."""
    b, c, h, w = x.shape
    out = torch.zeros(b, c, dtype=x.dtype)
    for i in range(b):
        for j in range(c):
            total = sum(float(x[i, j, u, v]) ** p for u in range(h) for v in range(w))
            out[i, j] = (total / (h * w)) ** (1.0 / p)
    return out


# ---------------------------------------------------------------- evaluation
def naive_rank_metrics(dist, qp, gp, qc, gc, ap="mean", empty="skip", max_rank=20, qig=None):
    """CMC / mAP / mINP by the classic per-query loop: stable argsort, remove junk and same id + camera, walk the
    ranking. Returns (cmc, mAP, mINP, skipped queries)."""
    cmc, aps, inps, skipped = np.zeros(max_rank), [], [], 0
    for i in range(len(qp)):
        order = np.argsort(dist[i], kind="stable")
        keep = []
        for j in order:
            if gp[j] == -1:
                continue
            if qc is not None and gp[j] == qp[i] and gc[j] == qc[i]:
                continue
            if qig is not None and j == qig[i]:
                continue
            keep.append(j)
        match = np.array([gp[j] == qp[i] for j in keep])
        if not match.any():
            skipped += 1
            if empty == "zero":
                aps.append(0.0)
                inps.append(0.0)
            continue
        first = int(np.argmax(match))
        hit = np.zeros(max_rank)
        if first < max_rank:
            hit[first:] = 1
        cmc += hit
        hits = np.flatnonzero(match)
        n = len(hits)
        total = 0.0
        for k, r in enumerate(hits, 1):
            if ap == "mean":
                total += k / (r + 1)
            else:
                above = 1.0 if r == 0 else (k - 1) / r
                total += (above + k / (r + 1)) / 2
        aps.append(total / n)
        inps.append(n / (hits[-1] + 1))
    counted = len(aps)
    return cmc / counted, float(np.mean(aps)), float(np.mean(inps)), skipped


def naive_k_reciprocal_rerank(qf: np.ndarray, gf: np.ndarray, k1: int, k2: int, lam: float) -> np.ndarray:
    """k-reciprocal re-ranking (Zhong et al. CVPR'17): dense implementation of methods.md steps 1-7, float64,
    written as plainly as possible."""
    x = np.concatenate([qf, gf]).astype(np.float64)
    n, q = len(x), len(qf)
    d = ((x[:, None] - x[None]) ** 2).sum(-1)
    d = d / d.max(axis=0)  # column maxima (d is symmetric)
    d = d.T
    rank = np.argsort(d, axis=1, kind="stable")

    def recip(i, k):
        fwd = rank[i, : k + 1]
        return np.array([j for j in fwd if i in rank[j, : k + 1]], dtype=int)

    v = np.zeros((n, n))
    for i in range(n):
        r = recip(i, k1)
        exp = list(r)
        for c in r:
            rc = recip(c, int(np.around(k1 / 2)))
            if len(np.intersect1d(rc, r)) > 2 / 3 * len(rc):
                exp.extend(rc)
        exp = np.unique(exp)
        w = np.exp(-d[i, exp])
        v[i, exp] = w / w.sum()
    if k2 != 1:
        v = np.stack([v[rank[i, :k2]].mean(0) for i in range(n)])
    jac = np.zeros((q, n))
    for i in range(q):
        for j in range(n):
            mn = np.minimum(v[i], v[j]).sum()
            mx = np.maximum(v[i], v[j]).sum()
            jac[i, j] = 1 - mn / mx
    final = (1 - lam) * jac + lam * d[:q]
    return final[:, q:]
