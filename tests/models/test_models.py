"""Backbones, heads and the re-ID model: shapes, registry, weights loading, HORDE, large-margin head."""
from __future__ import annotations

import pytest
import torch

from reid.models import BACKBONES, HRAMLEncoder, build_backbone, build_model
from reid.models import weights as weights_module
from reid.models.model import GeM


@pytest.mark.parametrize("name", ["resnet50", "bn_inception", "nin_bn", "small", "googlenet", "resnet18"])
def test_backbones_feature_maps(name):
    net = build_backbone(name).eval()
    for hw in ((256, 128), (128, 64)):
        with torch.no_grad():
            fmap = net(torch.randn(2, 3, *hw))
        assert fmap.shape[:2] == (2, net.out_channels)


def test_inception_v3_and_small_input_error():
    net = build_backbone("inception_v3").eval()
    with torch.no_grad():
        assert net(torch.randn(1, 3, 256, 128)).shape[1] == 2048
        with pytest.raises(ValueError, match="at least 75x75"):
            net(torch.randn(1, 3, 128, 64))


def test_last_stride_doubles_the_map():
    with torch.no_grad():
        a = build_backbone("resnet18", last_stride=2).eval()(torch.randn(1, 3, 128, 64))
        b = build_backbone("resnet18", last_stride=1).eval()(torch.randn(1, 3, 128, 64))
    assert b.shape[-2:] == (a.shape[-2] * 2, a.shape[-1] * 2)


def test_small_half_is_half_width_and_about_a_quarter_of_the_weights():
    full, half = build_backbone("small", last_stride=1), build_backbone("small_half", last_stride=1)
    assert (full.out_channels, half.out_channels) == (256, 128)
    n_full, n_half = (sum(p.numel() for p in m.parameters()) for m in (full, half))
    assert 0.2 < n_half / n_full < 0.3
    with torch.no_grad():
        assert half.eval()(torch.randn(2, 3, 64, 32)).shape == (2, 128, 8, 4)


def test_registry_errors():
    assert {"resnet50", "bn_inception", "nin_bn", "small", "googlenet", "inception_v3"} <= set(BACKBONES.names())
    with pytest.raises(KeyError, match="Did you mean 'resnet50'"):
        build_backbone("resnet05")


def test_model_outputs_train_and_eval():
    model = build_model({"backbone": "small", "embedding_dim": 16, "bn_neck": True, "num_classes": 5,
                         "classifier": "linear", "horde": {"orders": 3, "projection_dim": 8, "embedding_dim": 4}})
    out = model(torch.randn(4, 3, 64, 32), torch.tensor([0, 1, 2, 3]))
    assert set(out) == {"feature_map", "pooled", "embedding", "normalized", "logits", "horde"}
    assert out["logits"].shape == (4, 5) and len(out["horde"]) == 2 and out["horde"][0].shape == (4, 4)
    model.eval()
    with torch.no_grad():
        feat = model(torch.randn(3, 3, 64, 32))
        torch.testing.assert_close(feat.norm(dim=1), torch.ones(3))
        model.test_high_order = True
        assert model(torch.randn(3, 3, 64, 32)).shape == (3, 16 + 8)
    with pytest.raises(ValueError, match="unknown key.*embeding_dim"):
        build_model({"backbone": "small", "embeding_dim": 3})
    with pytest.raises(ValueError, match="needs num_classes"):
        build_model({"backbone": "small", "classifier": "linear"})


def test_state_dict_round_trip():
    a = build_model({"backbone": "nin_bn", "embedding_dim": 8}).eval()
    b = build_model({"backbone": "nin_bn", "embedding_dim": 8}).eval()
    b.load_state_dict(a.state_dict())
    x = torch.randn(2, 3, 128, 64)
    with torch.no_grad():
        assert torch.equal(a(x), b(x))


def test_gem_with_p_one_is_average():
    x = torch.rand(2, 3, 4, 4) + 0.1
    gem = GeM(p=1.0)
    torch.testing.assert_close(gem(x), x.mean(dim=(2, 3)))


def test_large_margin_head_anneals_and_is_plain_in_eval():
    model = build_model({"backbone": "small", "embedding_dim": 8, "num_classes": 3, "classifier": "large_margin"})
    head = model.classifier
    assert head.beta == 1000.0
    model(torch.randn(4, 3, 64, 32), torch.tensor([0, 1, 2, 0]))
    assert int(head.iteration) == 1 and head.beta < 1000.0
    head.iteration.fill_(10 ** 7)
    assert head.beta == 5.0
    model.eval()
    x = torch.randn(2, 8)
    torch.testing.assert_close(head(x), x @ head.weight.T)
    assert "classifier.iteration" in model.state_dict()


def test_frozen_random_maclaurin_projections():
    model = build_model({"backbone": "small", "horde": {"orders": 3, "projection_dim": 8, "embedding_dim": 4,
                                                        "trainable": False}})
    out = model(torch.randn(2, 3, 64, 32))
    sum(h.sum() for h in out["horde"]).backward()
    for p in model.horde.projections:
        assert p.grad is None and set(p.unique().tolist()) <= {-1.0, 1.0}
    assert model.horde.embeddings[0].weight.grad is not None


def test_pretrained_from_a_path_and_offline_errors(tmp_path, monkeypatch):
    source = build_backbone("bn_inception")
    state = {f"module.{k}": v for k, v in source.state_dict().items()}  # the converted checkpoint's key names
    state["last_linear.weight"] = torch.zeros(1000, 1024)
    del state["module.inception_5b_pool_proj_bn.running_var"]
    path = tmp_path / "bn_inception.pth"
    torch.save(state, path)
    with pytest.warns(UserWarning, match="1 missing keys.*inception_5b_pool_proj_bn.running_var"):
        loaded = build_backbone("bn_inception", pretrained=str(path))
    assert torch.equal(loaded.conv1_7x7_s2.weight, source.conv1_7x7_s2.weight)
    assert "inception_3a_1x1_bn.running_mean" in source.state_dict()
    with pytest.raises(weights_module.WeightsError, match="not found"):
        build_backbone("small", pretrained=str(tmp_path / "missing.pth"))
    with pytest.raises(weights_module.WeightsError, match="no ImageNet weights.*nin_bn"):
        build_backbone("nin_bn", pretrained="imagenet")

    def offline(name):
        raise OSError("network unreachable")

    monkeypatch.setattr(weights_module, "_download", offline)
    with pytest.raises(weights_module.WeightsError, match="could not download.*offline"):
        build_backbone("resnet18", pretrained="imagenet")


def test_hraml_encoder_init():
    enc = HRAMLEncoder(10, (7,), 3)
    linears = [m for m in enc.modules() if isinstance(m, torch.nn.Linear)]
    assert all(float(l.weight.abs().max()) <= 0.2 and float(l.bias.abs().max()) == 0 for l in linears)
    assert enc(torch.randn(4, 10)).abs().max() < 1


def test_hraml_encoder_init_and_shape():
    torch.manual_seed(0)
    enc = HRAMLEncoder(20, (30, 10), 4)
    linears = [m for m in enc.modules() if isinstance(m, torch.nn.Linear)]
    assert [(m.in_features, m.out_features) for m in linears] == [(20, 30), (30, 10), (10, 4)]
    for m in linears:
        assert m.weight.abs().max() <= 0.2 and m.weight.abs().max() > 0.15  # U[-0.2, 0.2] fills its range
        assert (m.bias == 0).all()
    x = torch.randn(7, 20)
    out = enc(x)
    expect = x
    for m in linears:
        expect = torch.tanh(expect @ m.weight.T + m.bias)
    torch.testing.assert_close(out, expect)
    with pytest.raises(ValueError, match=r"expected input \(B, 20\)"):
        enc(torch.randn(3, 5))
    with pytest.raises(ValueError, match="positive integers"):
        HRAMLEncoder(20, (0,), 4)


def test_high_order_pca_matches_svd_projection():
    from reid.models.horde import HighOrderPCA

    g = torch.Generator().manual_seed(0)
    train = torch.randn(50, 6, generator=g) @ torch.randn(6, 6, generator=g)
    pca = HighOrderPCA(3).fit(train)
    test = torch.randn(4, 6, generator=g)
    centred = train.double() - train.double().mean(0)
    cov = centred.T @ centred
    evals, evecs = torch.linalg.eigh(cov)
    top = evecs[:, -3:]
    expect = torch.nn.functional.normalize((test.double() - train.double().mean(0)) @ top, dim=1)
    got = pca.transform(test).double()
    # components are defined up to sign and order: compare absolute projections per component
    torch.testing.assert_close(got.abs().sort(dim=1).values, expect.abs().sort(dim=1).values, atol=1e-4, rtol=1e-4)
    with pytest.raises(ValueError, match="exceeds"):
        HighOrderPCA(10).fit(train)
