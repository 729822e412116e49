"""Metric and identity losses against naive loops; CombinedLoss routing, weights and errors."""
from __future__ import annotations

import math

import pytest
import torch
from torch.nn import functional as F

from reid.losses import LOSSES, CombinedLoss, build_loss


def batch(p=3, k=3, d=4, seed=0):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(p * k, d, generator=g, dtype=torch.float64)
    return x.requires_grad_(True), torch.arange(p).repeat_interleave(k)


def dist(a, b):
    return torch.sqrt(((a - b) ** 2).sum())


def check(loss, ref, x, y):
    a, b = loss(x, y), ref(x, y)
    ga, = torch.autograd.grad(a, x)
    gb, = torch.autograd.grad(b, x)
    assert float(a) == pytest.approx(float(b), rel=1e-9, abs=1e-12)
    torch.testing.assert_close(ga, gb)


def triplet_hard_naive(x, y, margin):
    total = 0
    n = len(x)
    for a in range(n):
        dp = max(dist(x[a], x[p]) for p in range(n) if p != a and y[p] == y[a])
        dn = min(dist(x[a], x[q]) for q in range(n) if y[q] != y[a])
        total = total + (F.softplus(dp - dn) if margin == "soft" else torch.clamp(dp - dn + margin, min=0))
    return total / n


def triplet_all_naive(x, y, margin):
    vals = []
    n = len(x)
    for a in range(n):
        for p in range(n):
            for q in range(n):
                if p != a and y[p] == y[a] and y[q] != y[a]:
                    v = torch.clamp(dist(x[a], x[p]) - dist(x[a], x[q]) + margin, min=0)
                    if float(v) > 1e-12:
                        vals.append(v)
    return sum(vals) / len(vals)


@pytest.mark.parametrize("margin", [0.3, 2.0, "soft"])
def test_triplet_batch_hard(margin):
    x, y = batch()
    check(build_loss("triplet", margin=margin), lambda x, y: triplet_hard_naive(x, y, margin), x, y)


def test_triplet_batch_all():
    x, y = batch(seed=1)
    check(build_loss("triplet", margin=0.5, mining="batch_all"), lambda x, y: triplet_all_naive(x, y, 0.5), x, y)


def test_contrastive():
    x, y = batch(seed=2)

    def naive(x, y):
        vals = []
        for i in range(len(x)):
            for j in range(len(x)):
                if i == j:
                    continue
                d = dist(x[i], x[j])
                vals.append(torch.clamp(d - 0.1, min=0) ** 2 if y[i] == y[j] else torch.clamp(0.9 - d, min=0) ** 2)
        return sum(vals) / len(vals)

    z = (x * 0.3).detach().requires_grad_(True)
    check(build_loss("contrastive", pos_margin=0.1, neg_margin=0.9), naive, z, y)


def test_npair():
    x, y = batch(p=4, k=2, seed=3)

    def naive(x, y):
        a, p = x[0::2], x[1::2]
        total = 0
        for i in range(len(a)):
            total = total + torch.log(1 + sum(torch.exp(a[i] @ p[j] - a[i] @ p[i]) for j in range(len(a)) if j != i))
        reg = 0.002 * ((a ** 2).sum(1).mean() + (p ** 2).sum(1).mean())
        return total / len(a) + reg

    check(build_loss("npair"), naive, x, y)


def test_binomial_deviance():
    x, y = batch(seed=4)

    def naive(x, y):
        u = F.normalize(x, dim=1)
        pos, neg = [], []
        for i in range(len(u)):
            for j in range(len(u)):
                if i == j:
                    continue
                s = u[i] @ u[j]
                if y[i] == y[j]:
                    pos.append(torch.log(1 + torch.exp(-2 * (s - 0.5))))
                else:
                    neg.append(torch.log(1 + torch.exp(2 * 25 * (s - 0.5))))
        return sum(pos) / len(pos) + sum(neg) / len(neg)

    check(build_loss("binomial_deviance"), naive, x, y)


def test_multi_similarity():
    x, y = batch(p=3, k=3, seed=5)

    def naive(x, y, a=2.0, b=50.0, lam=0.5, eps=0.1):
        u = F.normalize(x, dim=1)
        total = 0
        for i in range(len(u)):
            ps = [u[i] @ u[j] for j in range(len(u)) if j != i and y[j] == y[i]]
            ns = [u[i] @ u[j] for j in range(len(u)) if y[j] != y[i]]
            keep_n = [s for s in ns if float(s) + eps > min(float(p) for p in ps)]
            keep_p = [s for s in ps if float(s) - eps < max(float(n) for n in ns)]
            total = total + torch.log(1 + sum(torch.exp(-a * (s - lam)) for s in keep_p) + 0 * x.sum()) / a
            total = total + torch.log(1 + sum(torch.exp(b * (s - lam)) for s in keep_n) + 0 * x.sum()) / b
        return total / len(u)

    check(build_loss("multi_similarity"), naive, x, y)


def test_softmax_label_smoothing():
    logits = torch.randn(4, 5, dtype=torch.float64, requires_grad=True)
    y = torch.tensor([0, 3, 1, 1])
    eps = 0.1

    def naive(z, y):
        total = 0
        for i in range(4):
            logp = torch.log_softmax(z[i], 0)
            target = torch.full((5,), eps / 5, dtype=z.dtype)
            target[y[i]] += 1 - eps
            total = total - (target * logp).sum()
        return total / 4

    check(build_loss("softmax", label_smoothing=eps), naive, logits, y)


def test_half_precision_inputs_are_finite():
    x, y = batch(p=4, k=2, seed=6)
    for name in ("triplet", "contrastive", "binomial_deviance", "multi_similarity", "support_neighbor", "hraml"):
        loss = build_loss(name)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            value = loss(x.detach().bfloat16().requires_grad_(True), y)
        assert torch.isfinite(value) and value.dtype == torch.float32, name


def test_combined_routing_weights_and_names():
    x, y = batch(p=2, k=2)
    outputs = {"normalized": F.normalize(x, dim=1), "embedding": x, "logits": torch.randn(4, 2, dtype=torch.float64)}
    combined = CombinedLoss([{"name": "triplet", "weight": 2.0}, {"name": "triplet", "input": "embedding"},
                             {"name": "softmax", "weight": 0.5}])
    total, terms = combined(outputs, y)
    assert list(terms) == ["triplet", "triplet_1", "softmax"]
    t = build_loss("triplet")
    expect = 2 * t(outputs["normalized"], y) + t(x, y) + 0.5 * F.cross_entropy(outputs["logits"], y)
    assert float(total) == pytest.approx(float(expect))
    attrs = torch.rand(4, 3, dtype=torch.float64)
    hr = CombinedLoss([{"name": "hraml", "target": "attributes"}])
    value, _ = hr(outputs, y, batch={"attributes": attrs})
    assert float(value) == pytest.approx(float(build_loss("hraml")(outputs["normalized"], attrs)))


def test_combined_errors_and_loss_parameters():
    x, y = batch(p=2, k=2)
    with pytest.raises(KeyError, match="Did you mean 'triplet'"):
        CombinedLoss([{"name": "tripplet"}])
    with pytest.raises(ValueError, match=r"loss.terms\[0\] \(triplet\): unknown parameter\(s\) margn"):
        CombinedLoss([{"name": "triplet", "margn": 0.3}])
    with pytest.raises(KeyError, match="'horde'.*available: normalized"):
        CombinedLoss([{"name": "horde"}])({"normalized": x}, y)
    with pytest.raises(ValueError, match="needs a teacher"):
        CombinedLoss([{"name": "darkrank"}])({"normalized": x}, y)
    with pytest.raises(KeyError, match="attributes"):
        CombinedLoss([{"name": "hraml", "target": "attributes"}])({"normalized": x}, y, batch={})
    da = CombinedLoss([{"name": "density_adaptivity", "num_classes": 7}, {"name": "triplet"}])
    params = da.loss_parameters()
    assert len(params) == 1 and params[0].shape == (7,)
    assert set(LOSSES.names()) >= {"support_neighbor", "darkrank", "density_adaptivity", "hraml", "horde", "kd",
                                   "fitnet", "direct_match", "large_margin_softmax", "npair", "binomial_deviance"}
