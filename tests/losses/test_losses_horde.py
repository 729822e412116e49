"""HORDE regularizer loss (Jacob et al. ICCV'19): the base metric loss summed over the high-order embeddings (both
generations of the tests); the moments themselves are tested with the model (tests/models/test_models_horde.py)."""
from __future__ import annotations

import pytest
import torch

from naive_references import float_of_grad_ok, pk_batch
from reid.losses import CombinedLoss, build_loss


def batch(p=3, k=3, d=5, seed=0):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(p * k, d, generator=g, dtype=torch.float64)
    return x.requires_grad_(True), torch.arange(p).repeat_interleave(k)


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


@float_of_grad_ok
def test_horde_loss_sums_base_over_orders():
    x1, y = pk_batch(seed=1)
    x2, _ = pk_batch(seed=2)
    loss = build_loss("horde", base="contrastive")
    base = build_loss("contrastive")
    assert float(loss([x1, x2], y)) == pytest.approx(float(base(x1, y) + base(x2, y)))
    with pytest.raises(ValueError, match="model.horde"):
        loss(x1, y)
