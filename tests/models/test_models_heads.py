"""Heads and the re-ID model: pooling (avg/max/GeM), BN neck, linear and large-margin classifiers (values and
gradients against naive loops of the L-Softmax formula, beta annealing), the model's outputs and config errors."""
from __future__ import annotations

import pytest
import torch
from torch.nn import functional as F

from naive_references import naive_gem, naive_large_margin_logits
from reid.models import BNNeck, GeM, GlobalPool, LargeMarginClassifier, build_model, build_pooling
from reid.models.heads import build_classifier
from reid.models.model import MODEL_KEYS

# --- pooling -----------------------------------------------------------------------------------------------------


def test_gem_values_and_limits():
    x = torch.rand(2, 3, 4, 5, dtype=torch.float64) + 0.1
    torch.testing.assert_close(GeM(p=1.0).double()(x), x.mean(dim=(2, 3)))
    torch.testing.assert_close(GeM(p=3.0).double()(x), naive_gem(x, 3.0))
    torch.testing.assert_close(GeM(p=2.5).double()(x), naive_gem(x, 2.5))
    # large p tends to max pooling
    torch.testing.assert_close(GeM(p=200.0).double()(x), x.amax(dim=(2, 3)), atol=0.02, rtol=0.02)
    with pytest.raises(ValueError, match="p must be > 0"):
        GeM(p=0.0)


def test_gem_gradients_wrt_input_and_p():
    """Against central finite differences (torch.autograd.gradcheck for x; by hand for the parameter p)."""
    gem = GeM(p=3.0).double()
    x = (torch.rand(2, 2, 3, 3, dtype=torch.float64) + 0.1).requires_grad_()
    assert torch.autograd.gradcheck(lambda inp: gem(inp), (x,))
    gem(x.detach()).sum().backward()
    eps = 1e-6
    with torch.no_grad():
        gem.p += eps
        up = gem(x.detach()).sum()
        gem.p -= 2 * eps
        down = gem(x.detach()).sum()
    torch.testing.assert_close(gem.p.grad, (up - down) / (2 * eps), atol=1e-6, rtol=1e-5)


def test_global_pool_and_build_pooling():
    x = torch.randn(2, 3, 4, 2)
    torch.testing.assert_close(GlobalPool("avg")(x), x.mean(dim=(2, 3)))
    torch.testing.assert_close(GlobalPool("max")(x), x.flatten(2).max(dim=2).values)
    assert isinstance(build_pooling("gem"), GeM) and build_pooling("gem").p.requires_grad
    with pytest.raises(ValueError, match="model.pooling: expected one of avg, max, gem, got 'mean'"):
        build_pooling("mean")


def test_bn_neck_has_no_trainable_shift():
    neck = BNNeck(4)
    assert not neck.bias.requires_grad and torch.equal(neck.bias, torch.zeros(4))
    neck(torch.randn(6, 4)).sum().backward()
    assert neck.bias.grad is None and neck.weight.grad is not None


# --- large-margin softmax ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("m,beta", [(3, 0.0), (3, 7.5), (2, 0.0), (4, 1.0)])
def test_large_margin_logits_and_gradients_match_naive_loop(m, beta):
    g = torch.Generator().manual_seed(m)
    head = LargeMarginClassifier(5, 4, margin=m, beta_start=beta, beta_min=beta).double()
    with torch.no_grad():
        head.weight.copy_(torch.randn(4, 5, generator=g, dtype=torch.float64))
    x = torch.randn(12, 5, generator=g, dtype=torch.float64, requires_grad=True)
    labels = torch.randint(0, 4, (12,), generator=g)
    coeff = torch.randn(12, 4, generator=g, dtype=torch.float64)
    got = head(x, labels)
    (got * coeff).sum().backward()
    grads = x.grad.clone(), head.weight.grad.clone()
    x2 = x.detach().clone().requires_grad_()
    w2 = head.weight.detach().clone().requires_grad_()
    expect = naive_large_margin_logits(x2, w2, labels, m, beta)
    (expect * coeff).sum().backward()
    torch.testing.assert_close(got, expect)
    torch.testing.assert_close(grads[0], x2.grad)
    torch.testing.assert_close(grads[1], w2.grad)
    # the margin makes the target logit smaller (harder), never larger, and leaves the others alone
    plain = x.detach() @ head.weight.detach().T
    target = labels[:, None]
    assert (got.detach().gather(1, target) <= plain.gather(1, target) + 1e-9).all()
    off = torch.ones_like(plain, dtype=torch.bool).scatter(1, target, False)
    torch.testing.assert_close(got.detach()[off], plain[off])


def test_margin_one_is_plain_linear_logits():
    head = LargeMarginClassifier(6, 5, margin=1).double()
    x = torch.randn(8, 6, dtype=torch.float64)
    labels = torch.randint(0, 5, (8,))
    torch.testing.assert_close(head(x, labels), x @ head.weight.T)


def test_beta_annealing_schedule_and_modes():
    head = LargeMarginClassifier(4, 3, margin=3)
    assert head.beta == 1000.0
    assert head.beta_at(1000) == pytest.approx(1000.0 / 4)  # (1 + 1e-3 * 1000) ** -2
    assert head.beta_at(10 ** 6) == 5.0  # floor
    x, labels = torch.randn(5, 4, dtype=torch.float64), torch.tensor([0, 1, 2, 0, 1])
    head = head.double()
    first = head(x, labels)
    torch.testing.assert_close(first, naive_large_margin_logits(x, head.weight.detach(), labels, 3, 1000.0))
    second = head(x, labels)
    torch.testing.assert_close(second, naive_large_margin_logits(x, head.weight.detach(), labels, 3, head.beta_at(1)))
    assert int(head.iteration) == 2
    head(x)  # no labels: plain logits, no step
    assert int(head.iteration) == 2
    head.eval()
    torch.testing.assert_close(head(x, labels), x @ head.weight.T)  # no margin at test time
    assert int(head.iteration) == 2
    # the schedule resumes from a checkpoint
    other = LargeMarginClassifier(4, 3, margin=3).double()
    other.load_state_dict(head.state_dict())
    assert int(other.iteration) == 2 and other.beta == head.beta


def test_large_margin_runs_in_float32_under_autocast():
    head = LargeMarginClassifier(8, 4, margin=3)
    x, labels = torch.randn(6, 8), torch.tensor([0, 1, 2, 3, 0, 1])
    with torch.autocast("cpu", dtype=torch.bfloat16):
        got = head(x.bfloat16(), labels)
    assert got.dtype == torch.float32
    expect = naive_large_margin_logits(x.bfloat16().double(), head.weight.detach().double(), labels, 3, 1000.0)
    torch.testing.assert_close(got.double(), expect, atol=1e-5, rtol=1e-5)


def test_large_margin_bad_parameters():
    with pytest.raises(ValueError, match="margin must be a positive integer, got 2.5"):
        LargeMarginClassifier(4, 3, margin=2.5)
    with pytest.raises(ValueError, match="beta_min <= beta_start"):
        LargeMarginClassifier(4, 3, beta_start=1.0, beta_min=5.0)
    with pytest.raises(ValueError, match="expected null or one of linear, large_margin, got 'arcface'"):
        build_classifier("arcface", 4, 3)
    with pytest.raises(ValueError, match="'linear' needs num_classes"):
        build_classifier("linear", 4, None)


# --- the model ---------------------------------------------------------------------------------------------------

SMALL = {"backbone": "small", "last_stride": 2}


def test_training_outputs_and_their_relations():
    model = build_model({**SMALL, "embedding_dim": 16, "bn_neck": True, "num_classes": 5, "classifier": "linear",
                         "horde": {"orders": 3, "projection_dim": 8, "embedding_dim": 4}})
    x, labels = torch.randn(4, 3, 64, 32), torch.tensor([0, 1, 2, 3])
    out = model(x, labels)
    assert set(out) == {"feature_map", "pooled", "embedding", "normalized", "logits", "horde"}
    assert out["feature_map"].shape == (4, 256, 4, 2)
    torch.testing.assert_close(out["pooled"], out["feature_map"].mean(dim=(2, 3)))
    torch.testing.assert_close(out["embedding"], out["pooled"] @ model.fc.weight.T + model.fc.bias)
    # BN neck in training: batch statistics (biased variance), frozen zero shift
    e = out["embedding"].detach()
    neck = (e - e.mean(0)) / torch.sqrt(e.var(0, unbiased=False) + model.neck.eps) * model.neck.weight.detach()
    torch.testing.assert_close(out["normalized"], F.normalize(neck, dim=1), atol=1e-5, rtol=1e-4)
    torch.testing.assert_close(out["logits"], neck @ model.classifier.weight.detach().T, atol=1e-5, rtol=1e-4)
    assert len(out["horde"]) == 2 and all(h.shape == (4, 4) for h in out["horde"])
    # every head's loss reaches the backbone
    out["logits"].sum().backward()
    assert model.backbone.stem[0].weight.grad.abs().sum() > 0


def test_eval_outputs():
    model = build_model({**SMALL, "embedding_dim": 16, "bn_neck": True, "num_classes": 5,
                         "classifier": "large_margin", "horde": {"orders": 3, "projection_dim": 8,
                                                                 "embedding_dim": 4}})
    model(torch.randn(4, 3, 64, 32), torch.tensor([0, 1, 2, 3]))  # one step: running stats, beta counter
    model.eval()
    x = torch.randn(3, 3, 64, 32)
    with torch.no_grad():
        feat = model(x)
        out = model(x, return_dict=True)
        torch.testing.assert_close(feat, out["normalized"])
        torch.testing.assert_close(feat.norm(dim=1), torch.ones(3))
        neck = model.neck(out["embedding"])
        torch.testing.assert_close(out["logits"], neck @ model.classifier.weight.T)  # plain logits in eval
        model.test_high_order = True
        high = model(x)
        expect = F.normalize(torch.cat([out["normalized"], *out["horde"]], dim=1), dim=1)
        torch.testing.assert_close(high, expect)
        assert high.shape == (3, 16 + 2 * 4)
    assert int(model.classifier.iteration) == 1


def test_large_margin_in_the_model_uses_the_neck_output_and_labels():
    model = build_model({**SMALL, "embedding_dim": 8, "num_classes": 3, "classifier": "large_margin"})
    x, labels = torch.randn(4, 3, 64, 32), torch.tensor([0, 1, 2, 0])
    with torch.no_grad():
        out = model(x, labels)
    expect = naive_large_margin_logits(out["embedding"], model.classifier.weight, labels, 3, 1000.0)
    torch.testing.assert_close(out["logits"], expect, atol=1e-5, rtol=1e-4)
    assert model.embedding_dim == 8


def test_without_fc_embedding_is_pooled_and_gem_pooling():
    model = build_model({**SMALL, "pooling": "gem"})
    out = model(torch.rand(2, 3, 64, 32))
    assert set(out) == {"feature_map", "pooled", "embedding", "normalized"}
    assert out["embedding"] is out["pooled"] and model.embedding_dim == 256
    expect = naive_gem(out["feature_map"].detach().double().clamp_min(1e-6), 3.0).float()
    torch.testing.assert_close(out["pooled"].detach(), expect, atol=1e-5, rtol=1e-4)
    assert "pool.p" in model.state_dict()


def test_model_state_dict_round_trip(tmp_path):
    cfg = {**SMALL, "embedding_dim": 8, "bn_neck": True, "num_classes": 4, "classifier": "large_margin",
           "pooling": "gem", "horde": {"orders": 3, "projection_dim": 8, "embedding_dim": 4, "trainable": False}}
    torch.manual_seed(3)
    a = build_model(cfg)
    a(torch.randn(4, 3, 64, 32), torch.tensor([0, 1, 2, 3]))
    a.eval().test_high_order = True
    torch.save(a.state_dict(), tmp_path / "m.pth")
    torch.manual_seed(4)
    b = build_model(cfg)
    b.load_state_dict(torch.load(tmp_path / "m.pth", weights_only=True))
    b.eval().test_high_order = True
    x = torch.randn(2, 3, 64, 32)
    with torch.no_grad():
        assert torch.equal(a(x), b(x))
    assert b.classifier.beta == a.classifier.beta


def test_config_errors():
    with pytest.raises(ValueError, match="unknown key\\(s\\) embeding_dim; valid: " + ", ".join(MODEL_KEYS)):
        build_model({"backbone": "small", "embeding_dim": 3})
    with pytest.raises(ValueError, match="model.horde: unknown key\\(s\\) order; valid: orders"):
        build_model({"backbone": "small", "horde": {"order": 3}})
    with pytest.raises(ValueError, match="model.horde.orders: expected an integer >= 2, got 1"):
        build_model({"backbone": "small", "horde": {"orders": 1}})
    with pytest.raises(ValueError, match="needs num_classes"):
        build_model({"backbone": "small", "classifier": "linear"})
    with pytest.raises(ValueError, match="model.embedding_dim: expected null or a positive integer, got -3"):
        build_model({"backbone": "small", "embedding_dim": -3})
    with pytest.raises(KeyError, match="unknown backbone 'smal'"):
        build_model({"backbone": "smal"})
    with pytest.raises(TypeError, match="expected a mapping"):
        build_model(["small"])
