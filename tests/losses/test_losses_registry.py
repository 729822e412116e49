"""The loss registry, the calling convention and CombinedLoss (routing, weights, names, teachers, errors,
loss parameters); the float64 gradchecks of the seed methods' functional forms together."""
from __future__ import annotations

import pytest
import torch
from torch.nn import functional as F

from naive_references import float_of_grad_ok, pk_batch
from reid.losses import (LOSSES, CombinedLoss, ReIDLoss, build_loss, darkrank_loss, density_adaptivity_loss, hraml_loss,
                         support_neighbor_loss)
from reid.models import large_margin_logits

OUTPUT_KEYS = {"normalized", "embedding", "logits", "horde", "pooled", "feature_map"}


def outputs(seed=0, n=8, classes=4):
    g = torch.Generator().manual_seed(seed)
    emb = torch.randn(n, 6, generator=g, dtype=torch.float64, requires_grad=True)
    return {"embedding": emb, "normalized": F.normalize(emb, dim=1),
            "logits": torch.randn(n, classes, generator=g, dtype=torch.float64, requires_grad=True),
            "horde": [F.normalize(torch.randn(n, 5, generator=g, dtype=torch.float64), dim=1)]}


LABELS = torch.tensor([0, 0, 1, 1, 2, 2, 3, 3])


def test_every_registered_loss_follows_the_convention():
    expected = {"softmax", "large_margin_softmax", "triplet", "contrastive", "npair", "binomial_deviance",
                "multi_similarity", "hraml", "horde", "support_neighbor", "density_adaptivity", "darkrank", "kd",
                "fitnet", "direct_match"}
    assert expected <= set(LOSSES.names())
    for name in LOSSES.names():
        cls = LOSSES.get(name)
        assert issubclass(cls, ReIDLoss), name
        assert cls.default_input in OUTPUT_KEYS, name
        assert (cls.default_teacher_input in OUTPUT_KEYS) == cls.requires_teacher, name
    assert isinstance(build_loss("triplet", margin=0.5), LOSSES.get("triplet"))
    with pytest.raises(KeyError, match="unknown loss 'tripplet'. Did you mean 'triplet'"):
        build_loss("tripplet")


def test_losses_run_outside_autocast():
    out = outputs()
    with torch.autocast("cpu", dtype=torch.bfloat16):
        value = build_loss("triplet")(out["normalized"].float(), LABELS)
        combined, _ = CombinedLoss([{"name": "softmax"}])({"logits": out["logits"].float()}, LABELS)
    assert value.dtype == torch.float32 and combined.dtype == torch.float32
    assert combined.item() == pytest.approx(F.cross_entropy(out["logits"].float(), LABELS).item(), rel=1e-6)


def test_routing_weights_display_names_and_detached_values():
    out = outputs()
    combined = CombinedLoss([{"name": "triplet", "weight": 2.0}, {"name": "triplet", "input": "embedding",
                                                                   "margin": 0.5},
                             {"name": "softmax", "weight": 0.5}, {"name": "triplet", "weight": 0}])
    total, terms = combined(out, LABELS)
    assert list(terms) == ["triplet", "triplet_1", "softmax", "triplet_2"]
    t1, t2 = build_loss("triplet"), build_loss("triplet", margin=0.5)
    parts = [t1(out["normalized"], LABELS), t2(out["embedding"], LABELS), F.cross_entropy(out["logits"], LABELS)]
    assert total.item() == pytest.approx((2 * parts[0] + parts[1] + 0.5 * parts[2]).item(), rel=1e-12)
    for value, expect in zip(list(terms.values())[:3], parts):
        assert not value.requires_grad and value.item() == pytest.approx(expect.item(), rel=1e-12)
    total.backward()
    assert out["logits"].grad is not None and out["embedding"].grad is not None


def test_terms_stay_in_the_graph_one_gradient_per_term():
    out = outputs()
    combined = CombinedLoss([{"name": "triplet", "input": "embedding"}, {"name": "softmax", "weight": 0.5}])
    terms = combined.terms(out, LABELS)
    _, logged = combined(out, LABELS)
    assert list(terms) == ["triplet", "softmax"] and all(t.requires_grad for t in terms.values())
    assert all(terms[k].item() == logged[k].item() for k in terms)
    # the triplet term alone moves the embedding, never the logits: each term's gradient is its own
    grad_emb, grad_logits = torch.autograd.grad(terms["triplet"], [out["embedding"], out["logits"]],
                                                allow_unused=True)
    assert grad_logits is None and grad_emb.abs().sum() > 0
    expect = torch.autograd.grad(build_loss("triplet")(out["embedding"], LABELS), out["embedding"])[0]
    assert torch.allclose(grad_emb, expect, rtol=0, atol=1e-15)


def test_targets_from_the_batch_and_teacher_routing():
    out = outputs()
    attrs = torch.rand(8, 3, dtype=torch.float64)
    hr = CombinedLoss([{"name": "hraml", "target": "attributes"}])
    value, _ = hr(out, LABELS, batch={"attributes": attrs})
    assert value.item() == pytest.approx(build_loss("hraml")(out["normalized"], attrs).item())
    teacher = {"logits": torch.randn(8, 4, dtype=torch.float64), "normalized": F.normalize(torch.randn(8, 6,
                                                                                                     dtype=torch.float64))}
    kd = CombinedLoss([{"name": "kd", "weight": 3.0}, {"name": "direct_match", "teacher_input": "normalized"}])
    assert kd.requires_teacher and not CombinedLoss([{"name": "triplet"}]).requires_teacher
    total, terms = kd(out, LABELS, teacher)
    expect = 3 * build_loss("kd")(out["logits"], LABELS, teacher["logits"]) + build_loss("direct_match")(
        out["normalized"], LABELS, teacher["normalized"])
    assert total.item() == pytest.approx(expect.item(), rel=1e-12)


def test_errors_name_the_term_key_and_parameter():
    out = outputs()
    with pytest.raises(ValueError, match="terms is empty"):
        CombinedLoss([])
    with pytest.raises(ValueError, match=r"loss.terms\[1\] has no 'name'"):
        CombinedLoss([{"name": "triplet"}, {"weight": 1.0}])
    with pytest.raises(KeyError, match="Did you mean 'triplet'"):
        CombinedLoss([{"name": "tripplet"}])
    with pytest.raises(ValueError, match=r"loss.terms\[0\] \(triplet\): unknown parameter\(s\) margn; valid: distance, margin"):
        CombinedLoss([{"name": "triplet", "margn": 0.3}])
    with pytest.raises(ValueError, match=r"loss.terms\[0\] \(triplet\): triplet: mining must be"):
        CombinedLoss([{"name": "triplet", "mining": "hardest"}])
    with pytest.raises(ValueError, match=r"loss.terms\[0\] \(softmax\): weight must be a number, got 'x'"):
        CombinedLoss([{"name": "softmax", "weight": "x"}])
    with pytest.raises(KeyError, match="'horde'.*available: normalized"):
        CombinedLoss([{"name": "horde"}])({"normalized": out["normalized"]}, LABELS)
    with pytest.raises(ValueError, match="loss 'darkrank' needs a teacher"):
        CombinedLoss([{"name": "darkrank"}])(out, LABELS)
    with pytest.raises(KeyError, match="teacher output 'pooled'"):
        CombinedLoss([{"name": "kd", "teacher_input": "pooled"}])(out, LABELS, {"logits": out["logits"]})
    with pytest.raises(KeyError, match="targets 'attributes'"):
        CombinedLoss([{"name": "hraml", "target": "attributes"}])(out, LABELS, batch={})


def test_loss_parameters_are_exposed():
    combined = CombinedLoss([{"name": "density_adaptivity", "num_classes": 7}, {"name": "triplet"},
                             {"name": "fitnet", "student_dim": 6, "teacher_dim": 3}])
    params = combined.loss_parameters()
    shapes = sorted(tuple(p.shape) for p in params)
    assert (7,) in shapes and (3, 6) in shapes  # density alpha_c; FitNet regressor weight
    assert all(p.requires_grad for p in params)
    assert {id(p) for p in params} <= {id(p) for p in combined.parameters()}
    assert CombinedLoss([{"name": "triplet"}, {"name": "softmax"}]).loss_parameters() == []


@float_of_grad_ok
def test_gradcheck_float64():
    """The seed methods' functional forms together (SN, HRAML, DarkRank, density adaptivity, large-margin logits)."""
    x, y = pk_batch(p=3, k=2, d=3, seed=9)
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
