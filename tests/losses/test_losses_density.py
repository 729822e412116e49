"""Density adaptivity regularizer (Li et al. TMM 2019, eqs. 5 and 8) against naive per-class loops (both generations
of the tests: the seed methods' checks and the loss's own)."""
import pytest
import torch

from naive_references import float_of_grad_ok, naive_density_adaptivity, pk_batch
from reid.losses import build_loss, compute_class_densities, density_adaptivity_loss


def test_value_and_gradients_match_naive():
    g = torch.Generator().manual_seed(1)
    x = torch.randn(9, 4, generator=g, dtype=torch.float64)
    y = torch.tensor([0, 0, 0, 2, 2, 3, 4, 4, 4])  # class 3 has one image: excluded
    alpha = torch.rand(5, generator=g, dtype=torch.float64)
    d0 = torch.rand(5, generator=g, dtype=torch.float64) + 0.5
    xa, aa = x.clone().requires_grad_(True), alpha.clone().requires_grad_(True)
    xb, ab = x.clone().requires_grad_(True), alpha.clone().requires_grad_(True)
    got = density_adaptivity_loss(xa, y, aa, d0, eta=0.5)
    ref = naive_density_adaptivity(xb, y, ab, d0, 0.5)
    assert torch.allclose(got, ref, atol=1e-12)
    got.backward()
    ref.backward()
    assert torch.allclose(xa.grad, xb.grad, atol=1e-12)
    assert torch.allclose(aa.grad, ab.grad, atol=1e-12)
    assert aa.grad[[0, 2, 4]].abs().min() > 0 and aa.grad[[1, 3]].abs().max() == 0


def test_gradcheck_float64():
    g = torch.Generator().manual_seed(2)
    x = torch.randn(6, 3, generator=g, dtype=torch.float64, requires_grad=True)
    a = torch.rand(3, generator=g, dtype=torch.float64, requires_grad=True)
    d0 = torch.rand(3, generator=g, dtype=torch.float64) + 0.5
    y = torch.tensor([0, 0, 1, 1, 2, 2])
    assert torch.autograd.gradcheck(lambda x, a: density_adaptivity_loss(x, y, a, d0), (x, a))


def test_compute_class_densities_and_single_image_classes():
    x = torch.tensor([[0.0, 0.0], [2.0, 0.0], [5.0, 5.0], [1.0, 1.0], [1.0, 3.0]])
    y = torch.tensor([0, 0, 1, 2, 2])
    d0 = compute_class_densities(x, y, num_classes=4)
    # class 0: mean (1,0), squared dists 1,1 -> 1; class 2: mean (1,2) -> 1; classes 1, 3 get the mean (1)
    assert torch.allclose(d0, torch.tensor([1.0, 1.0, 1.0, 1.0]))
    assert density_adaptivity_loss(x[2:3], y[2:3], torch.ones(4), d0).item() == 0.0


def test_module_combines_base_and_regularizer():
    pytest.importorskip("reid.losses.metric")
    g = torch.Generator().manual_seed(3)
    x = torch.nn.functional.normalize(torch.randn(8, 4, generator=g), dim=1).requires_grad_(True)
    y = torch.tensor([0, 0, 1, 1, 2, 2, 3, 3])
    module = build_loss("density_adaptivity", num_classes=4, base="triplet", lam=10.0)
    with pytest.raises(RuntimeError, match="set_d0"):
        module(x, y)
    raw = torch.tensor([1.0, 2.0, 3.0, 2.0])
    module.set_d0(raw)
    assert torch.allclose(module.d0, raw / 2.0)
    loss = module(x, y)
    expected = module.base(x, y) + 10.0 * density_adaptivity_loss(x, y, module.alpha, module.d0, 0.5)
    assert torch.allclose(loss, expected)
    loss.backward()
    assert module.alpha.grad is not None and module.alpha.grad.abs().sum() > 0
    with pytest.raises(ValueError, match="shape"):
        module.set_d0(torch.ones(3))
    with pytest.raises(ValueError, match="base"):
        build_loss("density_adaptivity", num_classes=4, base="arcface")


def test_duplicates_large_values_and_bf16_finite():
    x = torch.tensor([[1.0, 2.0]] * 4 + [[1e3, -1e3], [0.0, 0.0]], requires_grad=True)
    y = torch.tensor([0, 0, 1, 1, 2, 2])
    loss = density_adaptivity_loss(x, y, torch.full((3,), 0.5, requires_grad=True), torch.ones(3))
    loss.backward()
    assert torch.isfinite(loss) and torch.isfinite(x.grad).all()
    module = build_loss("density_adaptivity", num_classes=3, base="contrastive")
    module.set_d0(torch.ones(3))
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = module(torch.nn.functional.normalize(x.detach(), dim=1).bfloat16(), y)
    assert torch.isfinite(out)


def test_set_d0_rejects_bad_values():
    module = build_loss("density_adaptivity", num_classes=3, base="contrastive")
    for bad in (torch.tensor([1.0, float("nan"), 1.0]), torch.zeros(3), torch.tensor([1.0, -1.0, 2.0])):
        with pytest.raises(ValueError, match="D0"):
            module.set_d0(bad)


@pytest.mark.parametrize("base", ["contrastive", "triplet", "npair"])
def test_every_base_runs_with_gradient(base):
    g = torch.Generator().manual_seed(4)
    x = torch.nn.functional.normalize(torch.randn(8, 4, generator=g), dim=1).requires_grad_(True)
    y = torch.tensor([0, 0, 1, 1, 2, 2, 3, 3])
    module = build_loss("density_adaptivity", num_classes=4, base=base)
    module.set_d0(torch.tensor([1.0, 2.0, 3.0, 4.0]))
    loss = module(x, y)
    loss.backward()
    assert torch.isfinite(loss) and x.grad.abs().sum() > 0


def test_normalize_all_uses_the_number_of_training_classes():
    g = torch.Generator().manual_seed(5)
    x = torch.randn(6, 3, generator=g, dtype=torch.float64)
    y = torch.tensor([0, 0, 1, 1, 4, 4])
    alpha = torch.rand(10, generator=g, dtype=torch.float64)
    d0 = torch.rand(10, generator=g, dtype=torch.float64) + 0.5
    classes = [0, 1, 4]
    dens = [((x[y == c] - x[y == c].mean(0)) ** 2).sum(1).mean() for c in classes]
    first = sum((dens[k] - alpha[c]) ** 2 - alpha[c] for k, c in enumerate(classes))
    cross = sum((d0[j] ** 0.5 * alpha[i] - d0[i] ** 0.5 * alpha[j]) ** 2 for i in classes for j in classes)
    ref_all, ref_batch = first / 10 + cross / 100, first / 3 + cross / 9
    assert torch.allclose(density_adaptivity_loss(x, y, alpha, d0, 0.5, num_classes=10), ref_all, atol=1e-12)
    assert torch.allclose(density_adaptivity_loss(x, y, alpha, d0, 0.5), ref_batch, atol=1e-12)
    for normalize, ref in (("all", ref_all), ("batch", ref_batch)):
        module = build_loss("density_adaptivity", num_classes=10, base="contrastive", lam=2.0, normalize=normalize)
        module.set_d0(d0 * 1.0)
        with torch.no_grad():
            module.alpha.copy_(alpha)
        d0n = d0 / d0.mean()
        cross_n = sum((d0n[j] ** 0.5 * alpha[i] - d0n[i] ** 0.5 * alpha[j]) ** 2 for i in classes for j in classes)
        c = 10 if normalize == "all" else 3
        expect = module.base(x, y) + 2.0 * (first / c + cross_n / c ** 2)
        assert torch.allclose(module(x, y).double(), expect, atol=1e-6)
    with pytest.raises(ValueError, match="normalize must be 'batch' or 'all'"):
        build_loss("density_adaptivity", num_classes=3, normalize="classes")


def test_bases_default_to_the_papers_squared_distances():
    g = torch.Generator().manual_seed(6)
    x = torch.nn.functional.normalize(torch.randn(8, 4, generator=g, dtype=torch.float64), dim=1) * 0.6
    y = torch.tensor([0, 0, 1, 1, 2, 2, 3, 3])
    paper_c = build_loss("density_adaptivity", num_classes=4, base="contrastive").base
    assert paper_c(x, y).item() == pytest.approx(build_loss("contrastive", distance="squared")(x, y).item())
    paper_t = build_loss("density_adaptivity", num_classes=4, base="triplet").base
    assert paper_t(x, y).item() == pytest.approx(build_loss("triplet", margin=1.0, distance="squared")(x, y).item())
    old = build_loss("density_adaptivity", num_classes=4, base="triplet", base_distance="euclidean").base
    assert old(x, y).item() == pytest.approx(build_loss("triplet")(x, y).item())  # previous: Euclidean, margin 0.3
    given = build_loss("density_adaptivity", num_classes=4, base="triplet", base_params={"margin": 0.5}).base
    assert (given.margin, given.distance) == (0.5, "squared")
    build_loss("density_adaptivity", num_classes=4, base="npair")  # inner products: no distance option
    with pytest.raises(ValueError, match="base_distance"):
        build_loss("density_adaptivity", num_classes=4, base_distance="cosine")


def test_set_alpha_initialises_targets_from_measured_densities():
    module = build_loss("density_adaptivity", num_classes=3, base="contrastive")
    assert torch.allclose(module.alpha.detach(), torch.full((3,), 0.5))  # the paper's initial value
    x = torch.tensor([[0.0, 0.0], [2.0, 0.0], [0.0, 0.0], [0.0, 4.0], [1.0, 1.0], [1.0, 1.0]])
    y = torch.tensor([0, 0, 1, 1, 2, 2])
    module.set_alpha(compute_class_densities(x, y, 3))
    assert torch.allclose(module.alpha.detach(), torch.tensor([1.0, 4.0, 0.0]))
    assert module.alpha.requires_grad
    with pytest.raises(ValueError, match="alpha init has shape"):
        module.set_alpha(torch.ones(4))
    with pytest.raises(ValueError, match="finite"):
        module.set_alpha(torch.tensor([1.0, float("nan"), 0.0]))


@float_of_grad_ok
def test_density_regularizer_matches_naive_and_reaches_alpha():
    x, _ = pk_batch(p=3, k=3, normalise=False)
    y = torch.tensor([0, 0, 0, 2, 2, 5, 5, 5, 7])  # class 7 has one image: ignored
    alpha = torch.rand(8, dtype=torch.float64, generator=torch.Generator().manual_seed(1)).requires_grad_(True)
    d0 = torch.rand(8, dtype=torch.float64, generator=torch.Generator().manual_seed(2)) + 0.1
    a = density_adaptivity_loss(x, y, alpha, d0)
    b = naive_density_adaptivity(x, y, alpha, d0)
    ga = torch.autograd.grad(a, [x, alpha])
    gb = torch.autograd.grad(b, [x, alpha])
    assert float(a) == pytest.approx(float(b), rel=1e-10)
    for u, v in zip(ga, gb):
        torch.testing.assert_close(u, v)
    assert ga[1][[0, 2, 5]].abs().sum() > 0 and ga[1][[1, 3, 4, 6, 7]].abs().sum() == 0


@float_of_grad_ok
def test_density_module_d0_and_errors():
    feats = torch.randn(12, 4)
    labels = torch.tensor([0, 0, 0, 1, 1, 1, 2, 2, 2, 3, 3, 4])
    d0 = compute_class_densities(feats, labels, 6)
    for c in range(4):
        f = feats[labels == c]
        assert float(d0[c]) == pytest.approx(float(((f - f.mean(0)) ** 2).sum(1).mean()), rel=1e-5)
    assert float(d0[4]) == pytest.approx(float(d0[:4].mean()))  # single image -> mean of the others
    loss = build_loss("density_adaptivity", num_classes=6, base="triplet", lam=10.0)
    x, y = pk_batch(p=3, k=4)
    with pytest.raises(RuntimeError, match="D0 was never measured"):
        loss(x.float(), y)
    loss.set_d0(d0)
    assert float(loss.d0.mean()) == pytest.approx(1.0)
    value = loss(x.float(), y)
    value.backward()
    assert loss.alpha.grad is not None and loss.alpha.grad[:3].abs().sum() > 0
