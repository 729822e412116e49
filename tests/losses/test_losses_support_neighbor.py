"""Support Neighbor loss (Li et al. MM'18, eqs. 3-5) against a naive per-anchor python loop (both generations of
the tests: the seed methods' checks and the loss's own)."""
import math

import pytest
import torch

from naive_references import assert_value_and_grad_match, float_of_grad_ok, naive_support_neighbor, pk_batch
from reid.losses import build_loss, support_neighbor_loss


def _batch(seed=0, n=8, d=5):
    g = torch.Generator().manual_seed(seed)
    x = torch.nn.functional.normalize(torch.randn(n, d, generator=g, dtype=torch.float64), dim=1)
    return x, torch.tensor([0, 0, 1, 1, 2, 2, 3, 3])[:n]


@pytest.mark.parametrize("k,squared", [(3, False), (5, True), (10, False)])
def test_value_and_gradient_match_naive(k, squared):
    x, y = _batch()
    sigma = 5.0  # moderate so naive exp() without log-sum-exp stays accurate
    a = x.clone().requires_grad_(True)
    b = x.clone().requires_grad_(True)
    got = support_neighbor_loss(a, y, k=k, sigma=sigma, lambda_squeeze=0.1,
                                distance="squared" if squared else "euclidean")
    ref = naive_support_neighbor(b, y, k, sigma, 0.1, squared=squared)
    assert torch.allclose(got, ref, atol=1e-10)
    got.backward()
    ref.backward()
    assert torch.allclose(a.grad, b.grad, atol=1e-9)


def test_no_positive_in_support_fallback_and_none():
    # class 0 pair far apart, each close to a negative: support K=1 holds only negatives
    x = torch.tensor([[0.0, 0.0], [10.0, 0.0], [0.1, 0.0], [10.1, 0.0]], dtype=torch.float64)
    y = torch.tensor([0, 0, 1, 2])
    got = support_neighbor_loss(x, y, k=1, sigma=1.0, lambda_squeeze=0.1)
    assert torch.allclose(got, naive_support_neighbor(x, y, 1, 1.0, 0.1, fallback=True), atol=1e-10)
    assert got > 0
    none = support_neighbor_loss(x, y, k=1, sigma=1.0, fallback="none")
    assert none.item() == 0.0  # no positives anywhere in support, no separation, no squeeze


def test_no_negative_in_support_is_squeeze_only():
    x = torch.tensor([[0.0, 0.0], [1.0, 0.0], [3.0, 0.0], [50.0, 0.0]], dtype=torch.float64)
    y = torch.tensor([0, 0, 0, 1])
    got = support_neighbor_loss(x, y, k=2, sigma=1.0, lambda_squeeze=0.5)
    assert torch.allclose(got, naive_support_neighbor(x, y, 2, 1.0, 0.5), atol=1e-10)


def test_k_at_least_batch_means_all_others():
    x, y = _batch()
    assert torch.allclose(support_neighbor_loss(x, y, k=100, sigma=5.0),
                          support_neighbor_loss(x, y, k=7, sigma=5.0))


def test_large_sigma_duplicates_and_bf16_finite():
    x, y = _batch()
    x = torch.cat([x, x[:2]]).float().requires_grad_(True)  # duplicates: d = 0
    y = torch.cat([y, y[:2]])
    loss = support_neighbor_loss(x, y, k=10, sigma=1e4)
    loss.backward()
    assert torch.isfinite(loss) and torch.isfinite(x.grad).all()
    module = build_loss("support_neighbor", k=4, sigma=50.0)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = module(x.bfloat16(), y)
    assert torch.isfinite(out)
    assert math.isfinite(float(naive_support_neighbor(x.detach()[:8], y[:8], 4, 5.0, 0.1)))


def test_bad_option_is_rejected():
    with pytest.raises(ValueError, match="distance"):
        build_loss("support_neighbor", distance="cosine")


def test_code_squeeze_is_nearest_positive_distance():
    x, y = _batch()
    paper = support_neighbor_loss(x, y, k=3, sigma=5.0, lambda_squeeze=0.0)
    code = support_neighbor_loss(x, y, k=3, sigma=5.0, lambda_squeeze=0.1, squeeze="code")
    nearest_pos = []
    for i in range(len(x)):
        nearest_pos.append(min(float(torch.linalg.norm(x[i] - x[j])) for j in range(len(x))
                               if j != i and y[j] == y[i]))
    assert abs(code.item() - paper.item() - 0.1 * sum(nearest_pos) / len(x)) < 1e-10


@float_of_grad_ok
@pytest.mark.parametrize("k,sigma,squared", [(10, 10.0, False), (3, 5.0, False), (2, 8.0, True), (50, 3.0, False)])
def test_support_neighbor_matches_naive(k, sigma, squared):
    x, y = pk_batch(seed=k)
    fn = lambda x, y: support_neighbor_loss(x, y, k=k, sigma=sigma, distance="squared" if squared else "euclidean")
    ref = lambda x, y: naive_support_neighbor(x, y, k=k, sigma=sigma, squared=squared)
    assert_value_and_grad_match(fn, ref, x, y)


@float_of_grad_ok
def test_support_neighbor_edge_cases():
    # K = 1: the only neighbour may be a negative (no positive -> fallback) or a positive (no negative -> 0 sep).
    x, y = pk_batch(p=3, k=2, seed=4)
    assert_value_and_grad_match(lambda x, y: support_neighbor_loss(x, y, k=1, sigma=5.0),
                                lambda x, y: naive_support_neighbor(x, y, k=1, sigma=5.0), x, y)
    none = support_neighbor_loss(x, y, k=1, sigma=5.0, fallback="none")
    assert float(none) <= float(support_neighbor_loss(x, y, k=1, sigma=5.0)) + 1e-12
    dup = torch.cat([x[:2].detach(), x[:2].detach()]).requires_grad_(True)  # duplicates: d = 0
    loss = support_neighbor_loss(dup.float(), torch.tensor([0, 1, 0, 1]), sigma=200.0)
    loss.backward()
    assert torch.isfinite(loss) and torch.isfinite(dup.grad).all()
