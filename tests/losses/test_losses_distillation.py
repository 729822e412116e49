"""KD (Hinton et al. 2015), FitNet (Romero et al. 2015) and Direct Match (DarkRank eq. 7) against hand formulas (both
generations of the tests: the seed methods' checks and the losses' own)."""
import pytest
import torch
from torch.nn import functional as F

from naive_references import float_of_grad_ok, naive_direct_match, naive_kd
from reid.losses import build_loss


def test_kd_matches_hinton_formula_by_hand():
    g = torch.Generator().manual_seed(0)
    s = torch.randn(3, 5, generator=g, dtype=torch.float64, requires_grad=True)
    t = torch.randn(3, 5, generator=g, dtype=torch.float64, requires_grad=True)
    T = 4.0
    ref = naive_kd(s, t, T)
    loss = build_loss("kd", temperature=T)(s, None, t)
    assert abs(loss.item() - ref) < 1e-12
    loss.backward()
    # d/ds of T^2 KL = T * (softmax(s/T) - softmax(t/T)) / B
    grad = T * (torch.softmax(s / T, 1) - torch.softmax(t / T, 1)) / 3
    assert torch.allclose(s.grad, grad.detach(), atol=1e-12)
    assert t.grad is None  # the teacher is fixed
    with pytest.raises(ValueError, match="kd"):
        build_loss("kd")(s, None, t[:, :4])


def test_fitnet_mse_and_regressor_gets_gradient():
    g = torch.Generator().manual_seed(1)
    s = torch.randn(4, 3, generator=g, requires_grad=True)
    t = torch.randn(4, 3, generator=g)
    same = build_loss("fitnet")(s, None, t)
    assert torch.allclose(same, ((s - t) ** 2).sum() / 12)
    module = build_loss("fitnet", student_dim=3, teacher_dim=6)
    t6 = torch.randn(4, 6, generator=g)
    loss = module(s, None, t6)
    ref = ((s @ module.regressor.weight.T + module.regressor.bias - t6) ** 2).mean()
    assert torch.allclose(loss, ref)
    loss.backward()
    assert module.regressor.weight.grad.abs().sum() > 0 and s.grad.abs().sum() > 0
    with pytest.raises(ValueError, match="student_dim"):
        build_loss("fitnet")(s, None, t6)


def test_direct_match_matches_loop_and_gradcheck():
    g = torch.Generator().manual_seed(2)
    s = torch.randn(5, 3, generator=g, dtype=torch.float64, requires_grad=True)
    t = torch.randn(5, 7, generator=g, dtype=torch.float64)
    module = build_loss("direct_match")
    ref = naive_direct_match(s, t)
    assert torch.allclose(module(s, None, t), ref, atol=1e-12)
    assert torch.autograd.gradcheck(lambda x: module(x, None, t), (s,))
    with pytest.raises(ValueError, match="batch"):
        module(s, None, t[:4])


def test_duplicates_and_half_precision_finite():
    x = torch.ones(4, 3, requires_grad=True)  # all duplicates: d = 0
    t = torch.randn(4, 3)
    for name in ("direct_match", "fitnet"):
        x.grad = None
        loss = build_loss(name)(x, None, t)
        loss.backward()
        assert torch.isfinite(loss) and torch.isfinite(x.grad).all()
    for dtype in (torch.float16, torch.bfloat16):
        with torch.autocast("cpu", dtype=dtype):
            out = build_loss("kd")(torch.randn(4, 10).to(dtype) * 30, None, torch.randn(4, 10).to(dtype) * 30)
        assert torch.isfinite(out)


def test_teacher_receives_no_gradient():
    g = torch.Generator().manual_seed(3)
    for name, kw in (("kd", {}), ("fitnet", {}), ("direct_match", {})):
        s = torch.randn(4, 6, generator=g, requires_grad=True)
        t = torch.randn(4, 6, generator=g, requires_grad=True)
        build_loss(name, **kw)(s, None, t).backward()
        assert t.grad is None and s.grad is not None, name


@float_of_grad_ok
def test_kd_fitnet_direct_match_against_formulas():
    g = torch.Generator().manual_seed(0)
    s = torch.randn(5, 7, generator=g, dtype=torch.float64, requires_grad=True)
    t = torch.randn(5, 7, generator=g, dtype=torch.float64)
    T = 4.0
    expect = sum((F.softmax(t[i] / T, 0) * (F.log_softmax(t[i] / T, 0) - F.log_softmax(s[i] / T, 0))).sum()
                 for i in range(5)) / 5 * T * T
    assert float(build_loss("kd", temperature=T)(s, None, t)) == pytest.approx(float(expect))
    dm = build_loss("direct_match")(s, None, t)
    assert float(dm) == pytest.approx(float(naive_direct_match(s, t)))
    fit = build_loss("fitnet", student_dim=7, teacher_dim=3)
    value = fit(s.float(), None, torch.randn(5, 3))
    value.backward()
    assert fit.regressor.weight.grad is not None
    with pytest.raises(ValueError, match="give student_dim and teacher_dim"):
        build_loss("fitnet")(s, None, torch.randn(5, 3, dtype=torch.float64))
