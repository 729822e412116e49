"""Metric losses (triplet, contrastive, N-pair, binomial deviance, multi-similarity) against naive loops of the
papers' equations, for value and gradient; float64 gradchecks; numerical stability."""
from __future__ import annotations


import pytest
import torch
from torch.nn import functional as F

from naive_references import (naive_binomial_deviance, naive_contrastive, naive_contrastive_squared, naive_multi_similarity,
                              naive_npair, naive_triplet_batch_all, naive_triplet_batch_hard)
from reid.losses import build_loss


def batch(p=3, k=3, d=4, seed=0):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(p * k, d, generator=g, dtype=torch.float64)
    return x.requires_grad_(True), torch.arange(p).repeat_interleave(k)


def check(loss, ref, x, y):
    a, b = loss(x, y), ref(x, y)
    ga, = torch.autograd.grad(a, x)
    gb, = torch.autograd.grad(b, x)
    assert a.item() == pytest.approx(b.item(), rel=1e-9, abs=1e-12)
    torch.testing.assert_close(ga, gb)


@pytest.mark.parametrize("margin", [0.3, 2.0, "soft"])
def test_triplet_batch_hard(margin):
    x, y = batch()
    check(build_loss("triplet", margin=margin), lambda x, y: naive_triplet_batch_hard(x, y, margin), x, y)


def test_triplet_batch_all():
    x, y = batch(seed=1)
    check(build_loss("triplet", margin=0.5, mining="batch_all"), lambda x, y: naive_triplet_batch_all(x, y, 0.5), x, y)


def test_contrastive():
    x, y = batch(seed=2)
    z = (x * 0.3).detach().requires_grad_(True)
    check(build_loss("contrastive", pos_margin=0.1, neg_margin=0.9), lambda x, y: naive_contrastive(x, y, 0.1, 0.9),
          z, y)


def test_npair():
    x, y = batch(p=4, k=2, seed=3)  # sorted P x 2: one tuple, anchors x[0::2] and positives x[1::2]
    check(build_loss("npair"), naive_npair, x, y)


def test_binomial_deviance():
    x, y = batch(seed=4)
    check(build_loss("binomial_deviance"), naive_binomial_deviance, x, y)


def test_multi_similarity():
    x, y = batch(p=3, k=3, seed=5)
    check(build_loss("multi_similarity"), naive_multi_similarity, x, y)


def test_npair_uses_every_pair_of_a_pk_batch():
    # P x K = 3 x 4 with shuffled order: tuples (1st, 2nd) and (3rd, 4th) image of each class; "first" keeps one.
    g = torch.Generator().manual_seed(7)
    x = torch.randn(12, 5, generator=g, dtype=torch.float64, requires_grad=True)
    y = torch.tensor([2, 0, 1, 0, 2, 1, 1, 0, 2, 2, 0, 1])
    check(build_loss("npair", l2_reg=0.01), lambda x, y: naive_npair(x, y, 2, l2_reg=0.01), x, y)
    check(build_loss("npair", l2_reg=0.01, pairs="first"), lambda x, y: naive_npair(x, y, 1, l2_reg=0.01), x, y)
    with pytest.raises(ValueError, match="at least 2 classes"):
        build_loss("npair")(x[:3], torch.tensor([0, 1, 2]))


@pytest.mark.parametrize("name,params", [("triplet", {}), ("triplet", {"margin": "soft"}),
                                         ("triplet", {"mining": "batch_all"}), ("contrastive", {}),
                                         ("npair", {}), ("binomial_deviance", {}), ("multi_similarity", {})])
def test_gradcheck_float64(name, params):
    x, y = batch(p=3, k=2, d=3, seed=8)
    x = (x * 0.5).detach().requires_grad_(True)
    loss = build_loss(name, **params)
    assert torch.autograd.gradcheck(lambda z: loss(z, y), (x,))


@pytest.mark.parametrize("name,params", [("triplet", {}), ("triplet", {"margin": "soft", "mining": "batch_all"}),
                                         ("contrastive", {}), ("npair", {}),
                                         ("binomial_deviance", {"alpha": 200.0, "cost": 250.0}),
                                         ("multi_similarity", {"alpha": 200.0, "beta": 5000.0})])
def test_stability_duplicates_large_scales_and_half_precision(name, params):
    loss = build_loss(name, **params)
    g = torch.Generator().manual_seed(0)
    base = F.normalize(torch.randn(4, 16, generator=g), dim=1)
    y = torch.tensor([0, 1, 2, 3, 0, 1, 2, 3])
    # exact duplicates (d = 0) and large similarity scales: finite value and gradient
    x = torch.cat([base, base]).requires_grad_(True)
    value = loss(x, y)
    value.backward()
    assert torch.isfinite(value) and torch.isfinite(x.grad).all()
    # bfloat16 autocast and float16 inputs: computed in float32
    h = torch.cat([base, base + 0.01]).half().requires_grad_(True)
    value = loss(h, y)
    value.backward()
    assert value.dtype == torch.float32 and torch.isfinite(value) and torch.isfinite(h.grad.float()).all()
    b = torch.cat([base, base + 0.01]).requires_grad_(True)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        value = loss(b.bfloat16(), y)
    value.backward()
    assert value.dtype == torch.float32 and torch.isfinite(value) and torch.isfinite(b.grad).all()
    assert value.item() == pytest.approx(loss(b, y).item(), rel=0.05, abs=0.05)


def test_triplet_and_contrastive_known_values():
    # two ids on a line: d(a, p) = 1, d(a, n) = 3 -> batch-hard hinge max(0, 1 - 3 + m)
    x = torch.tensor([[0.0], [1.0], [3.0], [4.0]])
    y = torch.tensor([0, 0, 1, 1])
    # anchors: 0: dp 1, dn 3; 1: dp 1, dn 2; 2: dp 1, dn 2; 3: dp 1, dn 3
    assert build_loss("triplet", margin=1.5)(x, y).item() == pytest.approx((0 + 0.5 + 0.5 + 0) / 4)
    # contrastive: positives (d = 1) cost 1, negatives with d < 2.5 (only d = 2) cost 0.25; 12 ordered pairs
    assert build_loss("contrastive", neg_margin=2.5)(x, y).item() == pytest.approx((4 * 1 + 2 * 0.25) / 12)


def test_bad_parameters_and_inputs():
    with pytest.raises(ValueError, match="mining must be batch_hard or batch_all"):
        build_loss("triplet", mining="hardest")
    with pytest.raises(ValueError, match="margin must be a number >= 0 or 'soft'"):
        build_loss("triplet", margin="hard")
    with pytest.raises(ValueError, match="pos_margin < neg_margin"):
        build_loss("contrastive", pos_margin=1.0, neg_margin=0.5)
    with pytest.raises(ValueError, match="pairs must be 'all' or 'first'"):
        build_loss("npair", pairs="some")
    with pytest.raises(ValueError, match=r"triplet: labels must have shape \(4,\)"):
        build_loss("triplet")(torch.randn(4, 3), torch.tensor([0, 1]))
    with pytest.raises(ValueError, match=r"multi_similarity: expected embeddings of shape \(B, d\)"):
        build_loss("multi_similarity")(torch.randn(4, 3, 2), torch.tensor([0, 1, 0, 1]))


def test_squared_distance_bases_of_the_density_paper():
    """Li et al. TMM'19: contrastive = D (positives) and max(0, 1 - D) (negatives), triplet [1 + D_ap - D_an]_+,
    with D the squared Euclidean distance."""
    x, y = batch(seed=5)
    z = (x * 0.4).detach().requires_grad_(True)  # some negatives inside the margin: both hinge branches active
    check(build_loss("contrastive", distance="squared"), naive_contrastive_squared, z, y)
    check(build_loss("triplet", margin=1.0, distance="squared"),
          lambda x, y: naive_triplet_batch_hard(x, y, 1.0, squared=True), z, y)
    # the default is still the Euclidean form, which differs on the same batch
    assert build_loss("contrastive")(z, y).item() != pytest.approx(naive_contrastive_squared(z, y).item(), rel=1e-3)
    with pytest.raises(ValueError, match="distance must be 'euclidean' or 'squared'"):
        build_loss("triplet", distance="cosine")
