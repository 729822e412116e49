"""HRAML (Gu) loss against naive loops (both generations of the tests: the seed methods' checks and the loss's
own); the encoder is tested with the models (tests/models/test_models.py)."""
from __future__ import annotations

import pytest
import torch

from naive_references import assert_value_and_grad_match, float_of_grad_ok, naive_hraml, pk_batch
from reid.losses import build_loss, hraml_loss


def batch(p=3, k=3, d=5, seed=0):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(p * k, d, generator=g, dtype=torch.float64)
    return x.requires_grad_(True), torch.arange(p).repeat_interleave(k)


def grads_match(a, b, x):
    assert a.item() == pytest.approx(b.item(), rel=1e-10, abs=1e-12)
    torch.testing.assert_close(torch.autograd.grad(a, x)[0], torch.autograd.grad(b, x)[0])


@pytest.mark.parametrize("reduction", ["mean", "sum"])
def test_hraml_labels_match_naive(reduction):
    x, y = batch()
    grads_match(hraml_loss(x, y, reduction=reduction), naive_hraml(x, y, reduction=reduction), x)
    grads_match(build_loss("hraml", reduction=reduction)(x, y), naive_hraml(x, y, reduction=reduction), x)


def test_hraml_attribute_vectors_match_naive():
    x, _ = batch(seed=1)
    g = torch.Generator().manual_seed(3)
    binary = (torch.rand(len(x), 6, generator=g) > 0.5).double()
    for scale in ("range", "none"):
        grads_match(hraml_loss(x, binary, target_scale=scale), naive_hraml(x, binary, attributes=True, scale=scale), x)
        soft = torch.rand(len(x), 4, generator=g, dtype=torch.float64)  # fractional attributes in [0, 1]
        grads_match(hraml_loss(x, soft, target_scale=scale), naive_hraml(x, soft, attributes=True, scale=scale), x)
        grads_match(build_loss("hraml", target_scale=scale)(x, soft), naive_hraml(x, soft, True, scale=scale), x)
    as_int = binary.long()  # integer attribute matrices are vectors, not labels
    assert hraml_loss(x, as_int).item() == pytest.approx(hraml_loss(x, binary).item())


def test_hraml_target_scaling_is_explicit():
    """Paper: g = ||y_i - y_j||_1 as is. A float one-hot target of C != 4 classes keeps g = 2 for different ids
    (it used to become 8 / C silently); only target_scale="range" rescales by 4 / d."""
    x, y = batch(p=3, k=2, seed=4)
    onehot = torch.eye(6, dtype=torch.float64)[y]  # C = 6
    assert hraml_loss(x, onehot).item() == pytest.approx(hraml_loss(x, y).item(), rel=1e-12)
    assert build_loss("hraml")(x, onehot).item() == pytest.approx(naive_hraml(x, y).item(), rel=1e-12)
    ranged = hraml_loss(x, onehot, target_scale="range")
    assert ranged.item() == pytest.approx(naive_hraml(x, onehot, attributes=True, scale="range").item(), rel=1e-12)
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


@float_of_grad_ok
def test_hraml_matches_naive_for_labels_and_attributes():
    x, y = pk_batch(normalise=False)
    assert_value_and_grad_match(lambda x, y: hraml_loss(x, y), naive_hraml, x, y)
    attrs = (torch.rand(len(x), 6, generator=torch.Generator().manual_seed(3)) > 0.5).double()
    assert_value_and_grad_match(lambda x, a: hraml_loss(x, a, target_scale="range"),
                                lambda x, a: naive_hraml(x, a, True), x, attrs)
    # zero when the embedding realises the targets: orthonormal codes per identity
    codes = torch.eye(4, dtype=torch.float64)[y]
    assert float(hraml_loss(codes, y)) == pytest.approx(0.0, abs=1e-12)
    assert float(hraml_loss(x, y, reduction="sum")) == pytest.approx(float(hraml_loss(x, y)) * 66)
