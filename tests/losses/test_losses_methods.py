"""The seed methods' losses against naive loops of the papers' equations, for value and gradient."""
from __future__ import annotations

import itertools
import math

import pytest
import torch
from torch.nn import functional as F

from reid.losses import (compute_class_densities, darkrank_loss, density_adaptivity_loss, hraml_loss,
                         support_neighbor_loss)
from reid.models import horde_moments, large_margin_logits
from reid.losses import build_loss

# The references read loss values that still carry gradients as Python floats, on purpose: torch warns about it.
pytestmark = pytest.mark.filterwarnings("ignore:Converting a tensor with requires_grad:UserWarning")

torch.set_default_dtype(torch.float32)


def batch(p=4, k=3, d=5, seed=0, normalise=True):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(p * k, d, generator=g, dtype=torch.float64)
    if normalise:
        x = F.normalize(x, dim=1)
    return x.requires_grad_(True), torch.arange(p).repeat_interleave(k)


def dist(a, b, squared=False):
    d2 = sum((a[t] - b[t]) ** 2 for t in range(len(a)))
    return d2 if squared else torch.sqrt(d2)


def grads_match(fn, ref, x, *args):
    a = fn(x, *args)
    ga, = torch.autograd.grad(a, x)
    b = ref(x, *args)
    gb, = torch.autograd.grad(b, x)
    assert float(a) == pytest.approx(float(b), rel=1e-9, abs=1e-10)
    torch.testing.assert_close(ga, gb, rtol=1e-7, atol=1e-9)


# ---------------------------------------------------------------- Support Neighbor (MM'18 eq. 3-5)
def sn_naive(x, y, k=10, sigma=50.0, lam=0.1, squared=False, fallback=True):
    n = len(x)
    total = 0
    for i in range(n):
        others = sorted((j for j in range(n) if j != i), key=lambda j: (float(dist(x[i], x[j], squared)), j))
        support = others[:k]
        P = [j for j in support if y[j] == y[i]]
        N = [j for j in support if y[j] != y[i]]
        if not P and fallback:
            P = [min((j for j in range(n) if j != i and y[j] == y[i]), key=lambda j: float(dist(x[i], x[j], squared)))]
        term = 0
        if P and N:
            num = sum(torch.exp(-sigma * dist(x[i], x[j], squared)) for j in P)
            den = num + sum(torch.exp(-sigma * dist(x[i], x[j], squared)) for j in N)
            term = -torch.log(num / den)
        if P:
            ds = [dist(x[i], x[j], squared) for j in P]
            term = term + lam * (max(ds) - min(ds))
        total = total + term
    return total / n


@pytest.mark.parametrize("k,sigma,squared", [(10, 10.0, False), (3, 5.0, False), (2, 8.0, True), (50, 3.0, False)])
def test_support_neighbor_matches_naive(k, sigma, squared):
    x, y = batch(seed=k)
    fn = lambda x, y: support_neighbor_loss(x, y, k=k, sigma=sigma, distance="squared" if squared else "euclidean")
    ref = lambda x, y: sn_naive(x, y, k=k, sigma=sigma, squared=squared)
    grads_match(fn, ref, x, y)


def test_support_neighbor_edge_cases():
    # K = 1: the only neighbour may be a negative (no positive -> fallback) or a positive (no negative -> 0 sep).
    x, y = batch(p=3, k=2, seed=4)
    grads_match(lambda x, y: support_neighbor_loss(x, y, k=1, sigma=5.0),
                lambda x, y: sn_naive(x, y, k=1, sigma=5.0), x, y)
    none = support_neighbor_loss(x, y, k=1, sigma=5.0, fallback="none")
    assert float(none) <= float(support_neighbor_loss(x, y, k=1, sigma=5.0)) + 1e-12
    dup = torch.cat([x[:2].detach(), x[:2].detach()]).requires_grad_(True)  # duplicates: d = 0
    loss = support_neighbor_loss(dup.float(), torch.tensor([0, 1, 0, 1]), sigma=200.0)
    loss.backward()
    assert torch.isfinite(loss) and torch.isfinite(dup.grad).all()


# ---------------------------------------------------------------- Density adaptivity (TMM'19 eq. 5, 8)
def da_naive(x, y, alpha, d0, eta=0.5):
    classes = [c for c in sorted(set(y.tolist())) if (y == c).sum() >= 2]
    dens = {}
    for c in classes:
        members = [x[i] for i in range(len(x)) if y[i] == c]
        mu = sum(members) / len(members)
        dens[c] = sum(((m - mu) ** 2).sum() for m in members) / len(members)
    C = len(classes)
    loss = sum((dens[c] - alpha[c]) ** 2 for c in classes) / C - sum(alpha[c] for c in classes) / C
    loss = loss + sum((d0[j] ** eta * alpha[i] - d0[i] ** eta * alpha[j]) ** 2 for i in classes for j in classes) / C ** 2
    return loss


def test_density_regularizer_matches_naive_and_reaches_alpha():
    x, _ = batch(p=3, k=3, normalise=False)
    y = torch.tensor([0, 0, 0, 2, 2, 5, 5, 5, 7])  # class 7 has one image: ignored
    alpha = torch.rand(8, dtype=torch.float64, generator=torch.Generator().manual_seed(1)).requires_grad_(True)
    d0 = torch.rand(8, dtype=torch.float64, generator=torch.Generator().manual_seed(2)) + 0.1
    a = density_adaptivity_loss(x, y, alpha, d0)
    b = da_naive(x, y, alpha, d0)
    ga = torch.autograd.grad(a, [x, alpha])
    gb = torch.autograd.grad(b, [x, alpha])
    assert float(a) == pytest.approx(float(b), rel=1e-10)
    for u, v in zip(ga, gb):
        torch.testing.assert_close(u, v)
    assert ga[1][[0, 2, 5]].abs().sum() > 0 and ga[1][[1, 3, 4, 6, 7]].abs().sum() == 0


def test_density_module_d0_and_errors():
    feats = torch.randn(12, 4)
    labels = torch.tensor([0, 0, 0, 1, 1, 1, 2, 2, 2, 3, 3, 4])
    d0 = compute_class_densities(feats, labels, 6)
    for c in range(4):
        f = feats[labels == c]
        assert float(d0[c]) == pytest.approx(float(((f - f.mean(0)) ** 2).sum(1).mean()), rel=1e-5)
    assert float(d0[4]) == pytest.approx(float(d0[:4].mean()))  # single image -> mean of the others
    loss = build_loss("density_adaptivity", num_classes=6, base="triplet", lam=10.0)
    x, y = batch(p=3, k=4)
    with pytest.raises(RuntimeError, match="D0 was never measured"):
        loss(x.float(), y)
    loss.set_d0(d0)
    assert float(loss.d0.mean()) == pytest.approx(1.0)
    value = loss(x.float(), y)
    value.backward()
    assert loss.alpha.grad is not None and loss.alpha.grad[:3].abs().sum() > 0


# ---------------------------------------------------------------- HRAML
def hraml_naive(u, targets, attributes=False):
    u = F.normalize(u, dim=1)
    total, count = 0, 0
    for i in range(len(u)):
        for j in range(i + 1, len(u)):
            if attributes:
                g = (targets[i] - targets[j]).abs().sum() * 4 / targets.shape[1]
            else:
                g = 0.0 if targets[i] == targets[j] else 2.0
            total = total + 0.25 * (dist(u[i], u[j], squared=True) - g) ** 2
            count += 1
    return total / count


def test_hraml_matches_naive_for_labels_and_attributes():
    x, y = batch(normalise=False)
    grads_match(lambda x, y: hraml_loss(x, y), hraml_naive, x, y)
    attrs = (torch.rand(len(x), 6, generator=torch.Generator().manual_seed(3)) > 0.5).double()
    grads_match(lambda x, a: hraml_loss(x, a, target_scale="range"), lambda x, a: hraml_naive(x, a, True), x, attrs)
    # zero when the embedding realises the targets: orthonormal codes per identity
    codes = torch.eye(4, dtype=torch.float64)[y]
    assert float(hraml_loss(codes, y)) == pytest.approx(0.0, abs=1e-12)
    assert float(hraml_loss(x, y, reduction="sum")) == pytest.approx(float(hraml_loss(x, y)) * 66)


# ---------------------------------------------------------------- HORDE (ICCV'19 eq. 6, 8)
def test_horde_moments_equal_explicit_products():
    g = torch.Generator().manual_seed(0)
    fmap = torch.randn(2, 3, 2, 2, generator=g, dtype=torch.float64)
    ws = [torch.randn(4, 3, generator=g, dtype=torch.float64) for _ in range(4)]
    got = horde_moments(fmap, ws)
    for order in range(2, 5):
        expect = torch.zeros(2, 4, dtype=torch.float64)
        for b in range(2):
            for hh in range(2):
                for ww in range(2):
                    v = fmap[b, :, hh, ww]
                    prod = torch.ones(4, dtype=torch.float64)
                    for w in ws[:order]:
                        prod = prod * (w @ v)
                    expect[b] += prod / 4
        torch.testing.assert_close(got[order - 2], expect)


def test_horde_loss_sums_base_over_orders():
    x1, y = batch(seed=1)
    x2, _ = batch(seed=2)
    loss = build_loss("horde", base="contrastive")
    base = build_loss("contrastive")
    assert float(loss([x1, x2], y)) == pytest.approx(float(base(x1, y) + base(x2, y)))
    with pytest.raises(ValueError, match="model.horde"):
        loss(x1, y)


# ---------------------------------------------------------------- Large-margin softmax
def lsoftmax_naive(x, w, y, m, beta):
    rows = []
    for i in range(len(x)):
        row = []
        for j in range(len(w)):
            dot = (w[j] * x[i]).sum()
            if j != y[i]:
                row.append(dot)
                continue
            nw, nx = w[j].norm(), x[i].norm()
            c = torch.clamp(dot / (nw * nx), -1, 1)
            theta = math.acos(float(c))
            k = min(int(theta / (math.pi / m)), m - 1)
            cos_m = torch.cos(m * torch.acos(c)) if abs(float(c)) < 1 else c ** m
            psi = (-1) ** k * cos_m - 2 * k
            row.append((beta * dot + nw * nx * psi) / (1 + beta))
        rows.append(torch.stack(row))
    return torch.stack(rows)


@pytest.mark.parametrize("m,beta", [(1, 0.0), (3, 0.0), (3, 10.0), (2, 1.0), (4, 0.0)])
def test_large_margin_logits_match_naive(m, beta):
    g = torch.Generator().manual_seed(m)
    x = torch.randn(6, 4, generator=g, dtype=torch.float64, requires_grad=True)
    w = torch.randn(5, 4, generator=g, dtype=torch.float64, requires_grad=True)
    y = torch.tensor([0, 1, 2, 3, 4, 0])
    a = large_margin_logits(x, w, y, m, beta)
    b = lsoftmax_naive(x, w, y, m, beta)
    torch.testing.assert_close(a, b)
    if m == 1:
        torch.testing.assert_close(a, x @ w.T)
    ga = torch.autograd.grad(a.sum(), [x, w])
    gb = torch.autograd.grad(b.sum(), [x, w])
    for u, v in zip(ga, gb):
        torch.testing.assert_close(u, v)


# ---------------------------------------------------------------- DarkRank (eq. 2, 3, 5, 7)
def pl_prob(scores):
    p = torch.ones((), dtype=scores.dtype)
    for i in range(len(scores)):
        p = p * torch.exp(scores[i]) / torch.exp(scores[i:]).sum()
    return p


def darkrank_naive(s, t, mode, alpha=3.0, beta=3.0, length=None):
    n = len(s)
    total = 0
    for q in range(n):
        cands = [j for j in range(n) if j != q]
        score = lambda e, j: -alpha * dist(e[q], e[j]) ** beta
        cands.sort(key=lambda j: (-float(score(t, j)), j))
        cands = cands[:length] if isinstance(length, int) else cands  # "all" / None: the whole list
        st = torch.stack([score(s, j) for j in cands])
        tt = torch.stack([score(t, j) for j in cands]).detach()
        if mode == "hard":
            total = total - torch.log(pl_prob(st))
        else:
            for perm in itertools.permutations(range(len(cands))):
                pt, ps = pl_prob(tt[list(perm)]), pl_prob(st[list(perm)])
                total = total + pt * (torch.log(pt) - torch.log(ps))
    return total / n


@pytest.mark.parametrize("mode,length", [("soft", "all"), ("soft", 3), ("hard", None), ("hard", 4)])
def test_darkrank_matches_naive(mode, length):
    s, _ = batch(p=3, k=2, d=4, seed=1, normalise=False)
    t, _ = batch(p=3, k=2, d=6, seed=2, normalise=False)
    s = (s * 0.4).detach().requires_grad_(True)
    t = (t * 0.4).detach()
    fn = lambda s, t: darkrank_loss(s, t, mode=mode, list_length=length)
    ref = lambda s, t: darkrank_naive(s, t, mode, length=length)
    grads_match(fn, ref, s, t)


def test_darkrank_monte_carlo_estimates_the_exact_kl():
    s, _ = batch(p=2, k=2, d=3, seed=3, normalise=False)
    t, _ = batch(p=2, k=2, d=3, seed=4, normalise=False)
    s, t = (s * 0.5).detach(), (t * 0.5).detach()
    exact = float(darkrank_loss(s, t, mode="soft"))
    mc = float(darkrank_loss(s, t, mode="mc", num_samples=20000, generator=torch.Generator().manual_seed(0)))
    assert mc == pytest.approx(exact, abs=0.02 + 0.05 * exact)


def test_darkrank_stability_and_errors():
    x = torch.randn(6, 8)
    dup = torch.cat([x[:3], x[:3]]).requires_grad_(True)  # duplicates: d = 0
    for mode in ("soft", "hard"):
        loss = darkrank_loss(dup * 4, x * 4, mode=mode, alpha=3.0, beta=3.0, list_length=4)  # |S| in the hundreds
        grad, = torch.autograd.grad(loss, dup)
        assert torch.isfinite(loss) and torch.isfinite(grad).all()
    with pytest.raises(ValueError, match="student batch 6 != teacher batch 5"):
        darkrank_loss(x, x[:5])
    with pytest.raises(ValueError, match="intractable"):
        darkrank_loss(torch.randn(12, 3), torch.randn(12, 3), mode="soft", list_length="all")
    with pytest.raises(ValueError, match="list_length must be <= 8"):
        build_loss("darkrank", mode="soft", list_length="all")


def test_teacher_receives_no_gradient():
    s = torch.randn(6, 4, requires_grad=True)
    t = torch.randn(6, 5, requires_grad=True)
    darkrank_loss(s, t, mode="soft", list_length=3).backward()
    assert t.grad is None and s.grad is not None


def test_kd_fitnet_direct_match_against_formulas():
    g = torch.Generator().manual_seed(0)
    s = torch.randn(5, 7, generator=g, dtype=torch.float64, requires_grad=True)
    t = torch.randn(5, 7, generator=g, dtype=torch.float64)
    T = 4.0
    expect = sum((F.softmax(t[i] / T, 0) * (F.log_softmax(t[i] / T, 0) - F.log_softmax(s[i] / T, 0))).sum()
                 for i in range(5)) / 5 * T * T
    assert float(build_loss("kd", temperature=T)(s, None, t)) == pytest.approx(float(expect))
    dm = build_loss("direct_match")(s, None, t)
    naive = sum((dist(s[i], s[j]) - dist(t[i], t[j])) ** 2 for i in range(5) for j in range(5) if i != j) / 20
    assert float(dm) == pytest.approx(float(naive))
    fit = build_loss("fitnet", student_dim=7, teacher_dim=3)
    value = fit(s.float(), None, torch.randn(5, 3))
    value.backward()
    assert fit.regressor.weight.grad is not None
    with pytest.raises(ValueError, match="give student_dim and teacher_dim"):
        build_loss("fitnet")(s, None, torch.randn(5, 3, dtype=torch.float64))


def test_gradcheck_float64():
    x, y = batch(p=3, k=2, d=3, seed=9)
    x = x.detach().requires_grad_(True)
    assert torch.autograd.gradcheck(lambda z: support_neighbor_loss(z, y, k=3, sigma=4.0), (x,))
    assert torch.autograd.gradcheck(lambda z: hraml_loss(z, y), (x,))
    t = torch.randn(6, 4, dtype=torch.float64)
    assert torch.autograd.gradcheck(lambda z: darkrank_loss(z, t, mode="soft", list_length=3, alpha=1.0), (x,))
    assert torch.autograd.gradcheck(lambda z: darkrank_loss(z, t, mode="hard", alpha=1.0), (x,))
    alpha = torch.rand(3, dtype=torch.float64, requires_grad=True)
    d0 = torch.rand(3, dtype=torch.float64) + 0.5
    assert torch.autograd.gradcheck(lambda z, a: density_adaptivity_loss(z, y, a, d0), (x, alpha))
    w = torch.randn(4, 3, dtype=torch.float64, requires_grad=True)
    labels = torch.tensor([0, 1, 2, 3, 0, 1])
    assert torch.autograd.gradcheck(lambda z, ww: large_margin_logits(z, ww, labels, 3, 2.0), (x, w))


def test_darkrank_under_half_precision_autocast_is_finite():
    s = torch.randn(8, 16).bfloat16().requires_grad_(True)
    t = torch.randn(8, 16).bfloat16()
    with torch.autocast("cpu", dtype=torch.bfloat16):
        value = build_loss("darkrank", mode="soft", alpha=3.0, beta=3.0, list_length=4)(s, None, t)
    value.backward()
    assert torch.isfinite(value) and torch.isfinite(s.grad.float()).all()
