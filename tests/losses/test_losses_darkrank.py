"""DarkRank (Chen, Wang, Zhang 2017, eqs. 2-5) against naive float64 enumeration of Plackett-Luce probabilities
(both generations of the tests: the seed methods' checks and the loss's own)."""
import math

import pytest
import torch
from torch.nn import functional as F

from naive_references import (assert_value_and_grad_match, float_of_grad_ok, naive_darkrank, naive_darkrank_scores,
                              pk_batch, plackett_luce_prob, teacher_list)
from reid.losses import build_loss, darkrank_loss


def _pair(n=6, ds=4, dt=7, seed=0, scale=0.4):
    g = torch.Generator().manual_seed(seed)
    s = torch.randn(n, ds, generator=g, dtype=torch.float64) * scale
    t = torch.randn(n, dt, generator=g, dtype=torch.float64) * scale
    return s, t


@pytest.mark.parametrize("mode,length", [("soft", "all"), ("soft", 3), ("hard", None), ("hard", 2)])
def test_value_and_gradient_match_naive(mode, length):
    s, t = _pair(n=5)
    a, b = s.clone().requires_grad_(True), s.clone().requires_grad_(True)
    got = darkrank_loss(a, t, mode=mode, list_length=length)
    ref = naive_darkrank(b, t, mode, length=None if length == "all" else length)
    assert torch.allclose(got, ref, atol=1e-10, rtol=1e-8)
    got.backward()
    ref.backward()
    assert torch.allclose(a.grad, b.grad, atol=1e-9, rtol=1e-7)


def test_defaults_hard_whole_list_soft_four_in_functional_and_registry():
    """Paper eq. 5 / released ListMLE: hard ranks every candidate; the released soft ListNet keeps the top 4."""
    s, t = _pair(n=9)  # 8 candidates per anchor: a top-4 truncation would differ from the whole list
    labels = torch.zeros(9)
    whole_hard = naive_darkrank(s, t, "hard", length=None)
    assert torch.allclose(darkrank_loss(s, t, mode="hard"), whole_hard, atol=1e-10)
    assert torch.allclose(build_loss("darkrank", mode="hard")(s, labels, t), whole_hard, atol=1e-10)
    assert not torch.allclose(naive_darkrank(s, t, "hard", length=4), whole_hard, atol=1e-6)
    soft4 = naive_darkrank(s, t, "soft", length=4)
    assert torch.allclose(darkrank_loss(s, t, mode="soft"), soft4, atol=1e-10)
    assert torch.allclose(build_loss("darkrank")(s, labels, t), soft4, atol=1e-10)  # soft is the registry's mode
    assert not torch.allclose(naive_darkrank(s, t, "soft", length=5), soft4, atol=1e-6)
    # mc samples the whole list by default: its estimate tracks the exact whole-list KL, not the top-4 one
    small_s, small_t = _pair(n=7, seed=3)
    exact_all = darkrank_loss(small_s, small_t, mode="soft", list_length="all")
    mc = darkrank_loss(small_s, small_t, mode="mc", num_samples=4000, generator=torch.Generator().manual_seed(0))
    assert abs(mc.item() - exact_all.item()) < 0.1 * exact_all.item() + 5e-3


def test_soft_is_zero_when_student_equals_teacher_and_positive_otherwise():
    s, t = _pair(n=5, dt=4)
    assert darkrank_loss(t, t, mode="soft").abs() < 1e-12
    assert darkrank_loss(s, t, mode="soft") > 0


def test_monte_carlo_estimates_exact_kl():
    s, t = _pair(n=4)
    exact = darkrank_loss(s, t, mode="soft")
    g = torch.Generator().manual_seed(0)
    mc = darkrank_loss(s, t, mode="mc", num_samples=20000, generator=g)
    assert abs(mc.item() - exact.item()) < 0.05 * exact.item() + 2e-3
    # the gradient of the MC estimate approaches the exact gradient (teacher fixed, only P_s differentiated)
    a, b = s.clone().requires_grad_(True), s.clone().requires_grad_(True)
    darkrank_loss(a, t, mode="soft").backward()
    darkrank_loss(b, t, mode="mc", num_samples=20000, generator=torch.Generator().manual_seed(1)).backward()
    assert torch.allclose(a.grad, b.grad, atol=0.05 * a.grad.abs().max().item())


def test_gradcheck_float64():
    s, t = _pair(n=4)
    s.requires_grad_(True)
    for mode in ("soft", "hard"):
        assert torch.autograd.gradcheck(lambda x: darkrank_loss(x, t, mode=mode), (s,))


def test_teacher_receives_no_gradient_and_anchor_options():
    s, t = _pair(n=6, dt=4)
    s.requires_grad_(True)
    t.requires_grad_(True)
    loss = build_loss("darkrank", mode="soft", list_length=4)(s, torch.zeros(6), t)
    loss.backward()
    assert t.grad is None and s.grad.abs().sum() > 0
    one = darkrank_loss(s, t, mode="hard", anchors="one")
    ss, ts = naive_darkrank_scores(s.detach(), 3.0, 3.0), naive_darkrank_scores(t.detach(), 3.0, 3.0)
    ref = -torch.log(plackett_luce_prob([ss[0][j] for j in teacher_list(ts, 0, 5)]))
    assert torch.allclose(one.detach(), ref, atol=1e-10)
    half = darkrank_loss(s, t, mode="hard", anchors="half")
    refs = [-torch.log(plackett_luce_prob([ss[i][j] for j in teacher_list(ts, i, 5)])) for i in range(3)]
    assert torch.allclose(half.detach(), sum(refs) / 3, atol=1e-10)


def test_code_variant_is_paper_score_on_normalised_features():
    s, t = _pair(n=5)
    code = darkrank_loss(s, t, mode="hard", variant="code")
    sn, tn = torch.nn.functional.normalize(s, dim=1), torch.nn.functional.normalize(t, dim=1)
    assert torch.allclose(code, naive_darkrank(sn, tn, "hard", alpha=3.5 ** 2, beta=4.0), atol=1e-10)


def test_stability_large_scores_duplicates_and_half_precision():
    s, t = _pair(n=6, scale=3.0)  # |S| in the hundreds
    s = torch.cat([s, s[:1]]).float().requires_grad_(True)  # duplicate: d = 0
    t = torch.cat([t, t[:1]]).float()
    for mode in ("soft", "hard", "mc"):
        s.grad = None
        loss = darkrank_loss(s, t, mode=mode, list_length=4, alpha=30.0)
        loss.backward()
        assert torch.isfinite(loss) and torch.isfinite(s.grad).all(), mode
    module = build_loss("darkrank", mode="soft", list_length=4)
    for dtype in (torch.float16, torch.bfloat16):
        with torch.autocast("cpu", dtype=dtype):
            out = module(s.to(dtype), None, t.to(dtype))
        assert torch.isfinite(out) and out.dtype == torch.float32


def test_bad_input_errors():
    s, t = _pair(n=6)
    with pytest.raises(ValueError, match="batch"):
        darkrank_loss(s, t[:5])
    with pytest.raises(ValueError, match="list_length"):
        darkrank_loss(torch.randn(12, 3), torch.randn(12, 3), mode="soft", list_length="all")
    with pytest.raises(ValueError, match="list_length"):
        build_loss("darkrank", mode="soft", list_length=9)
    with pytest.raises(ValueError, match="list_length"):
        build_loss("darkrank", mode="soft", list_length="all")
    with pytest.raises(ValueError, match="positive integer"):
        darkrank_loss(s, t, mode="hard", list_length=0)
    with pytest.raises(ValueError, match="mode"):
        darkrank_loss(s, t, mode="listnet")
    assert math.isfinite(float(darkrank_loss(torch.randn(12, 3), torch.randn(12, 3), mode="mc", num_samples=8)))


@float_of_grad_ok
@pytest.mark.parametrize("mode,length", [("soft", "all"), ("soft", 3), ("hard", None), ("hard", 4)])
def test_darkrank_matches_naive(mode, length):
    s, _ = pk_batch(p=3, k=2, d=4, seed=1, normalise=False)
    t, _ = pk_batch(p=3, k=2, d=6, seed=2, normalise=False)
    s = (s * 0.4).detach().requires_grad_(True)
    t = (t * 0.4).detach()
    fn = lambda s, t: darkrank_loss(s, t, mode=mode, list_length=length)
    ref = lambda s, t: naive_darkrank(s, t, mode, length=length)
    assert_value_and_grad_match(fn, ref, s, t)


@float_of_grad_ok
def test_darkrank_monte_carlo_estimates_the_exact_kl():
    s, _ = pk_batch(p=2, k=2, d=3, seed=3, normalise=False)
    t, _ = pk_batch(p=2, k=2, d=3, seed=4, normalise=False)
    s, t = (s * 0.5).detach(), (t * 0.5).detach()
    exact = float(darkrank_loss(s, t, mode="soft"))
    mc = float(darkrank_loss(s, t, mode="mc", num_samples=20000, generator=torch.Generator().manual_seed(0)))
    assert mc == pytest.approx(exact, abs=0.02 + 0.05 * exact)


@float_of_grad_ok
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


@float_of_grad_ok
def test_teacher_receives_no_gradient():
    s = torch.randn(6, 4, requires_grad=True)
    t = torch.randn(6, 5, requires_grad=True)
    darkrank_loss(s, t, mode="soft", list_length=3).backward()
    assert t.grad is None and s.grad is not None


@float_of_grad_ok
def test_darkrank_under_half_precision_autocast_is_finite():
    s = torch.randn(8, 16).bfloat16().requires_grad_(True)
    t = torch.randn(8, 16).bfloat16()
    with torch.autocast("cpu", dtype=torch.bfloat16):
        value = build_loss("darkrank", mode="soft", alpha=3.0, beta=3.0, list_length=4)(s, None, t)
    value.backward()
    assert torch.isfinite(value) and torch.isfinite(s.grad.float()).all()


def _batch_map(features, pids):
    """Leave-one-out retrieval mAP within a set (every item has positives)."""
    d = torch.cdist(features, features).fill_diagonal_(float("inf"))
    order = d.argsort(1)[:, :-1]
    match = (pids[order] == pids[:, None]).float()
    precision = match.cumsum(1) / torch.arange(1, match.shape[1] + 1)
    return float(((precision * match).sum(1) / match.sum(1)).mean())


@pytest.mark.parametrize("mode", ["soft", "hard"])
def test_transfer_alone_teaches_a_student_the_teachers_neighbourhoods(mode):
    # Inputs: 8 identity dims + 24 loud noise dims. The teacher sees only the identity dims; a random linear student
    # starts near chance. DarkRank alone (no labels), on the paper's batch (8 pairs + 16 singles, the pairs as anchors),
    # must move it to the teacher's neighbourhoods: a sign or ordering defect in the transfer would not.
    g = torch.Generator().manual_seed(0)
    centres = torch.randn(40, 8, generator=g)

    def sample(p):
        return torch.cat([centres[p] + 0.3 * torch.randn(len(p), 8, generator=g),
                          2.0 * torch.randn(len(p), 24, generator=g)], 1)

    def teacher(x):
        return F.normalize(x[:, :8], dim=1)

    test_p = torch.arange(40).repeat_interleave(3)
    test_x = sample(test_p)
    torch.manual_seed(0)
    student = torch.nn.Linear(32, 16)
    loss_fn = build_loss("darkrank", mode=mode, anchors="half")
    opt = torch.optim.Adam(student.parameters(), 1e-2)
    before = _batch_map(F.normalize(student(test_x), dim=1), test_p)
    for _ in range(120):
        ids = torch.randperm(40, generator=g)[:24]
        p = torch.cat([ids[:8].repeat_interleave(2), ids[8:]])
        x = sample(p)
        loss = loss_fn(F.normalize(student(x), dim=1), p, teacher(x))
        opt.zero_grad()
        loss.backward()
        opt.step()
    after = _batch_map(F.normalize(student(test_x), dim=1), test_p)
    assert before < 0.15 and _batch_map(teacher(test_x), test_p) > 0.85
    assert after > 0.6, f"{mode}: student mAP {before:.3f} -> {after:.3f}"
