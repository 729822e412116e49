"""Support Neighbor loss (Li et al. MM'18, eqs. 3-5) against a naive per-anchor python loop."""
import math

import pytest
import torch

from reid.losses import build_loss, support_neighbor_loss


def naive_sn(x, labels, k, sigma, lam, squared=False, fallback=True):
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
    ref = naive_sn(b, y, k, sigma, 0.1, squared=squared)
    assert torch.allclose(got, ref, atol=1e-10)
    got.backward()
    ref.backward()
    assert torch.allclose(a.grad, b.grad, atol=1e-9)


def test_no_positive_in_support_fallback_and_none():
    # class 0 pair far apart, each close to a negative: support K=1 holds only negatives
    x = torch.tensor([[0.0, 0.0], [10.0, 0.0], [0.1, 0.0], [10.1, 0.0]], dtype=torch.float64)
    y = torch.tensor([0, 0, 1, 2])
    got = support_neighbor_loss(x, y, k=1, sigma=1.0, lambda_squeeze=0.1)
    assert torch.allclose(got, naive_sn(x, y, 1, 1.0, 0.1, fallback=True), atol=1e-10)
    assert got > 0
    none = support_neighbor_loss(x, y, k=1, sigma=1.0, fallback="none")
    assert none.item() == 0.0  # no positives anywhere in support, no separation, no squeeze


def test_no_negative_in_support_is_squeeze_only():
    x = torch.tensor([[0.0, 0.0], [1.0, 0.0], [3.0, 0.0], [50.0, 0.0]], dtype=torch.float64)
    y = torch.tensor([0, 0, 0, 1])
    got = support_neighbor_loss(x, y, k=2, sigma=1.0, lambda_squeeze=0.5)
    assert torch.allclose(got, naive_sn(x, y, 2, 1.0, 0.5), atol=1e-10)


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
    assert math.isfinite(float(naive_sn(x.detach()[:8], y[:8], 4, 5.0, 0.1)))


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
