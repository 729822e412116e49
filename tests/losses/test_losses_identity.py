"""Identity losses: label-smoothed cross-entropy and large-margin softmax logits (Liu et al. 2016, eq. 6) against
naive per-element loops using acos / cos(m theta) directly (both generations of the tests: the seed methods'
checks and the losses' own)."""
from __future__ import annotations

import math

import pytest
import torch

from naive_references import float_of_grad_ok, naive_label_smoothing_ce, naive_large_margin_logits
from reid.losses import build_loss
from reid.models import large_margin_logits


@pytest.mark.parametrize("m,beta", [(1, 0.0), (2, 1.0), (3, 0.0), (3, 10.0), (4, 0.0)])
def test_large_margin_logits_and_gradients_match_naive(m, beta):
    g = torch.Generator().manual_seed(m)
    x = torch.randn(8, 4, generator=g, dtype=torch.float64, requires_grad=True)
    w = torch.randn(5, 4, generator=g, dtype=torch.float64, requires_grad=True)
    y = torch.tensor([0, 1, 2, 3, 4, 0, 2, 4])
    a = large_margin_logits(x, w, y, m=m, beta=beta)
    b = naive_large_margin_logits(x, w, y, m, beta)
    torch.testing.assert_close(a, b)
    weights = torch.randn(a.shape, generator=g, dtype=torch.float64)  # a generic upstream gradient
    ga = torch.autograd.grad((a * weights).sum(), [x, w])
    gb = torch.autograd.grad((b * weights).sum(), [x, w])
    for u, v in zip(ga, gb):
        torch.testing.assert_close(u, v)


def test_m1_is_plain_linear_logits_and_margin_lowers_the_target():
    g = torch.Generator().manual_seed(0)
    x, w = torch.randn(6, 3, generator=g), torch.randn(4, 3, generator=g)
    y = torch.tensor([0, 1, 2, 3, 0, 1])
    torch.testing.assert_close(large_margin_logits(x, w, y, m=1), x @ w.T)
    torch.testing.assert_close(large_margin_logits(x, w, y, m=3, beta=1e12), x @ w.T)  # huge beta: plain logits
    plain, margin = x @ w.T, large_margin_logits(x, w, y, m=3)
    target = torch.arange(6), y
    assert (margin[target] <= plain[target] + 1e-6).all()  # psi(theta) <= cos(theta)
    off = torch.ones_like(plain, dtype=torch.bool)
    off[target] = False
    torch.testing.assert_close(margin[off], plain[off])


def test_psi_at_the_piece_boundaries_and_extremes():
    # theta = k pi / 3 for k = 0..3 (x at that angle from w = e_1): psi is continuous, psi(0) = 1, psi(pi) = -5
    w = torch.tensor([[1.0, 0.0]], dtype=torch.float64)
    thetas = torch.tensor([0, math.pi / 3, 2 * math.pi / 3, math.pi], dtype=torch.float64)
    x = torch.stack([torch.cos(thetas), torch.sin(thetas)], 1) * 2.0
    got = large_margin_logits(x, w, torch.zeros(4, dtype=torch.long), m=3).squeeze(1)
    torch.testing.assert_close(got, 2.0 * torch.tensor([1.0, -1.0, -3.0, -5.0], dtype=torch.float64))


def test_gradcheck_and_zero_vectors():
    g = torch.Generator().manual_seed(1)
    x = torch.randn(5, 3, generator=g, dtype=torch.float64, requires_grad=True)
    w = torch.randn(4, 3, generator=g, dtype=torch.float64, requires_grad=True)
    y = torch.tensor([0, 1, 2, 3, 1])
    assert torch.autograd.gradcheck(lambda a, b: large_margin_logits(a, b, y, m=3, beta=2.0), (x, w))
    # a zero feature, and a feature parallel to its class weight (theta = 0): finite gradients
    z = torch.cat([torch.zeros(1, 3, dtype=torch.float64), w[:1].detach() * 3]).requires_grad_(True)
    out = large_margin_logits(z, w, torch.tensor([1, 0]), m=3)
    gz, gw = torch.autograd.grad(out.sum(), [z, w])
    assert torch.isfinite(out).all() and torch.isfinite(gz).all() and torch.isfinite(gw).all()


def test_large_margin_errors():
    x, w = torch.randn(2, 3), torch.randn(4, 3)
    with pytest.raises(ValueError, match="m must be an integer >= 1"):
        large_margin_logits(x, w, torch.tensor([0, 1]), m=0)
    with pytest.raises(ValueError, match=r"labels must be in \[0, 3\]"):
        large_margin_logits(x, w, torch.tensor([0, 4]))
    with pytest.raises(ValueError, match="expected x"):
        large_margin_logits(x, torch.randn(4, 2), torch.tensor([0, 1]))


def test_softmax_label_smoothing_matches_naive():
    logits = torch.randn(4, 5, dtype=torch.float64, requires_grad=True)
    y = torch.tensor([0, 3, 1, 1])
    eps = 0.1
    for name in ("softmax", "large_margin_softmax"):
        a, b = build_loss(name, label_smoothing=eps)(logits, y), naive_label_smoothing_ce(logits, y, eps)
        assert a.item() == pytest.approx(b.item(), rel=1e-12)
        torch.testing.assert_close(torch.autograd.grad(a, logits)[0], torch.autograd.grad(b, logits)[0])


def test_softmax_half_precision_and_errors():
    loss = build_loss("softmax", label_smoothing=0.1)
    logits = (torch.randn(4, 6) * 30).requires_grad_(True)
    y = torch.tensor([0, 5, 2, 2])
    with torch.autocast("cpu", dtype=torch.bfloat16):
        value = loss(logits.bfloat16(), y)
    value.backward()
    assert value.dtype == torch.float32 and torch.isfinite(value) and torch.isfinite(logits.grad).all()
    assert loss(logits.half(), y).dtype == torch.float32
    with pytest.raises(ValueError, match=r"label_smoothing must be in \[0, 1\)"):
        build_loss("softmax", label_smoothing=1.0)
    with pytest.raises(ValueError, match=r"labels must be in \[0, 5\]"):
        loss(logits, torch.tensor([0, 6, 1, 1]))
    with pytest.raises(ValueError, match=r"expected logits of shape \(B, num_classes\)"):
        loss(torch.randn(4), y)


@float_of_grad_ok
@pytest.mark.parametrize("m,beta", [(1, 0.0), (3, 0.0), (3, 10.0), (2, 1.0), (4, 0.0)])
def test_large_margin_logits_match_naive(m, beta):
    g = torch.Generator().manual_seed(m)
    x = torch.randn(6, 4, generator=g, dtype=torch.float64, requires_grad=True)
    w = torch.randn(5, 4, generator=g, dtype=torch.float64, requires_grad=True)
    y = torch.tensor([0, 1, 2, 3, 4, 0])
    a = large_margin_logits(x, w, y, m, beta)
    b = naive_large_margin_logits(x, w, y, m, beta)
    torch.testing.assert_close(a, b)
    if m == 1:
        torch.testing.assert_close(a, x @ w.T)
    ga = torch.autograd.grad(a.sum(), [x, w])
    gb = torch.autograd.grad(b.sum(), [x, w])
    for u, v in zip(ga, gb):
        torch.testing.assert_close(u, v)
