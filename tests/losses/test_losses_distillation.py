"""KD (Hinton et al. 2015), FitNet (Romero et al. 2015) and Direct Match (DarkRank eq. 7) against hand formulas."""
import math

import pytest
import torch

from reid.losses import build_loss


def test_kd_matches_hinton_formula_by_hand():
    g = torch.Generator().manual_seed(0)
    s = torch.randn(3, 5, generator=g, dtype=torch.float64, requires_grad=True)
    t = torch.randn(3, 5, generator=g, dtype=torch.float64, requires_grad=True)
    T = 4.0
    ref = 0.0
    for b in range(3):
        zs = sum(math.exp(v / T) for v in s[b].tolist())
        zt = sum(math.exp(v / T) for v in t[b].tolist())
        for k in range(5):
            pt = math.exp(t[b, k].item() / T) / zt
            ps = math.exp(s[b, k].item() / T) / zs
            ref += pt * (math.log(pt) - math.log(ps))
    ref = ref / 3 * T * T
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
    ref = 0.0
    for i in range(5):
        for j in range(5):
            if i != j:
                ref = ref + (torch.linalg.norm(s[i] - s[j]) - torch.linalg.norm(t[i] - t[j])) ** 2
    ref = ref / 20
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
