"""HRAML (Gu) loss and encoder, and the HORDE regularizer loss (Jacob et al. ICCV'19) against naive loops."""
from __future__ import annotations

import pytest
import torch

from reid.losses import CombinedLoss, build_loss, hraml_loss
from reid.models.mlp import HRAMLEncoder


def batch(p=3, k=3, d=5, seed=0):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(p * k, d, generator=g, dtype=torch.float64)
    return x.requires_grad_(True), torch.arange(p).repeat_interleave(k)


def hraml_naive(x, targets, attributes=False, reduction="mean", scale="range"):
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


def grads_match(a, b, x):
    assert a.item() == pytest.approx(b.item(), rel=1e-10, abs=1e-12)
    torch.testing.assert_close(torch.autograd.grad(a, x)[0], torch.autograd.grad(b, x)[0])


@pytest.mark.parametrize("reduction", ["mean", "sum"])
def test_hraml_labels_match_naive(reduction):
    x, y = batch()
    grads_match(hraml_loss(x, y, reduction=reduction), hraml_naive(x, y, reduction=reduction), x)
    grads_match(build_loss("hraml", reduction=reduction)(x, y), hraml_naive(x, y, reduction=reduction), x)


def test_hraml_attribute_vectors_match_naive():
    x, _ = batch(seed=1)
    g = torch.Generator().manual_seed(3)
    binary = (torch.rand(len(x), 6, generator=g) > 0.5).double()
    for scale in ("range", "none"):
        grads_match(hraml_loss(x, binary, target_scale=scale), hraml_naive(x, binary, attributes=True, scale=scale), x)
        soft = torch.rand(len(x), 4, generator=g, dtype=torch.float64)  # fractional attributes in [0, 1]
        grads_match(hraml_loss(x, soft, target_scale=scale), hraml_naive(x, soft, attributes=True, scale=scale), x)
        grads_match(build_loss("hraml", target_scale=scale)(x, soft), hraml_naive(x, soft, True, scale=scale), x)
    as_int = binary.long()  # integer attribute matrices are vectors, not labels
    assert hraml_loss(x, as_int).item() == pytest.approx(hraml_loss(x, binary).item())


def test_hraml_target_scaling_is_explicit():
    """Paper: g = ||y_i - y_j||_1 as is. A float one-hot target of C != 4 classes keeps g = 2 for different ids
    (it used to become 8 / C silently); only target_scale="range" rescales by 4 / d."""
    x, y = batch(p=3, k=2, seed=4)
    onehot = torch.eye(6, dtype=torch.float64)[y]  # C = 6
    assert hraml_loss(x, onehot).item() == pytest.approx(hraml_loss(x, y).item(), rel=1e-12)
    assert build_loss("hraml")(x, onehot).item() == pytest.approx(hraml_naive(x, y).item(), rel=1e-12)
    ranged = hraml_loss(x, onehot, target_scale="range")
    assert ranged.item() == pytest.approx(hraml_naive(x, onehot, attributes=True, scale="range").item(), rel=1e-12)
    assert ranged.item() != pytest.approx(hraml_loss(x, y).item(), rel=1e-3)  # 8/6 instead of 2
    assert hraml_loss(x, y, target_scale="range").item() == pytest.approx(hraml_loss(x, y).item())  # labels: as is
    with pytest.raises(ValueError, match="target_scale must be 'none'"):
        build_loss("hraml", target_scale="auto")


def test_hraml_zero_when_distances_match_targets():
    y = torch.tensor([0, 0, 1, 2, 2, 3])
    codes = torch.eye(4, dtype=torch.float64)[y] * 3.0  # orthogonal per identity: D^2 = 2 or 0 after normalising
    assert hraml_loss(codes, y).item() == pytest.approx(0.0, abs=1e-14)
    # attributes: opposite unit vectors for complementary binary codes (g = 4), equal codes coincide (g = 0)
    attrs = torch.tensor([[1.0, 0.0], [0.0, 1.0], [1.0, 0.0]])
    emb = torch.tensor([[1.0, 0.0], [-1.0, 0.0], [2.0, 0.0]])
    assert hraml_loss(emb, attrs, target_scale="range").item() == pytest.approx(0.0, abs=1e-12)
    # unscaled (the paper): complementary 2-attribute codes are at L1 distance 2, i.e. orthogonal directions
    orth = torch.tensor([[1.0, 0.0], [0.0, 1.0], [2.0, 0.0]])
    assert hraml_loss(orth, attrs).item() == pytest.approx(0.0, abs=1e-12)
    assert hraml_loss(emb, torch.tensor([0, 1, 1])).item() > 0.1


def test_hraml_gradcheck_stability_and_errors():
    x, y = batch(p=3, k=2, d=3, seed=2)
    x = x.detach().requires_grad_(True)
    assert torch.autograd.gradcheck(lambda z: hraml_loss(z, y), (x,))
    dup = torch.cat([x[:3].detach(), x[:3].detach()]).float().requires_grad_(True)  # duplicates: D = 0
    value = hraml_loss(dup, torch.tensor([0, 1, 2, 0, 1, 2]))
    value.backward()
    assert torch.isfinite(value) and torch.isfinite(dup.grad).all()
    with torch.autocast("cpu", dtype=torch.bfloat16):
        half = build_loss("hraml")(x.detach().bfloat16(), y)
    assert half.dtype == torch.float32 and half.item() == pytest.approx(hraml_loss(x, y).item(), rel=0.05)
    assert hraml_loss(x[:1], y[:1]).item() == 0.0  # no pair
    with pytest.raises(ValueError, match="reduction must be 'mean' or 'sum'"):
        build_loss("hraml", reduction="max")
    with pytest.raises(ValueError, match=r"attribute vectors must lie in \[0, 1\]"):
        hraml_loss(x, torch.full((6, 2), 2.0), target_scale="range")
    with pytest.raises(ValueError, match="integer labels"):
        hraml_loss(x, torch.zeros(6))
    with pytest.raises(ValueError, match="5 targets for 6 embeddings"):
        hraml_loss(x, y[:5])


def test_hraml_encoder_init_and_shape():
    torch.manual_seed(0)
    enc = HRAMLEncoder(20, (30, 10), 4)
    linears = [m for m in enc.modules() if isinstance(m, torch.nn.Linear)]
    assert [(m.in_features, m.out_features) for m in linears] == [(20, 30), (30, 10), (10, 4)]
    for m in linears:
        assert m.weight.abs().max() <= 0.2 and m.weight.abs().max() > 0.15  # U[-0.2, 0.2] fills its range
        assert (m.bias == 0).all()
    x = torch.randn(7, 20)
    out = enc(x)
    expect = x
    for m in linears:
        expect = torch.tanh(expect @ m.weight.T + m.bias)
    torch.testing.assert_close(out, expect)
    with pytest.raises(ValueError, match=r"expected input \(B, 20\)"):
        enc(torch.randn(3, 5))
    with pytest.raises(ValueError, match="positive integers"):
        HRAMLEncoder(20, (0,), 4)


def test_horde_sums_the_base_loss_over_orders():
    x1, y = batch(seed=1)
    x2, _ = batch(d=7, seed=2)  # orders may have different sizes
    x3, _ = batch(seed=3)
    for base, params in (("contrastive", {"neg_margin": 0.9}), ("triplet", {"margin": 0.2}),
                         ("binomial_deviance", {})):
        loss = build_loss("horde", base=base, base_params=params)
        single = build_loss(base, **params)
        total = loss([x1, x2, x3], y)
        expect = single(x1, y) + single(x2, y) + single(x3, y)
        assert total.item() == pytest.approx(expect.item(), rel=1e-12)
        grads = torch.autograd.grad(total, [x1, x2, x3])
        for xi, gi in zip((x1, x2, x3), grads):  # every order receives the gradient of its own term (weight 1)
            torch.testing.assert_close(gi, torch.autograd.grad(single(xi, y), xi)[0])


def test_horde_routing_and_errors():
    x1, y = batch(seed=1)
    combined = CombinedLoss([{"name": "horde", "base": "triplet"}])
    total, terms = combined({"normalized": x1, "horde": [x1, x1]}, y)
    assert total.item() == pytest.approx(2 * build_loss("triplet")(x1, y).item())
    with pytest.raises(ValueError, match="model.horde"):
        build_loss("horde")(x1, y)
    with pytest.raises(ValueError, match="base must be a metric loss"):
        build_loss("horde", base="softmax")
    with pytest.raises(ValueError, match="base must be a metric loss"):
        build_loss("horde", base="horde")
    with pytest.raises(ValueError, match="bad base_params for 'triplet'"):
        build_loss("horde", base="triplet", base_params={"margn": 1})
    with pytest.raises(KeyError, match="unknown loss 'tripet'"):
        build_loss("horde", base="tripet")
