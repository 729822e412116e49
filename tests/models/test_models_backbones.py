"""Backbones: feature-map shapes at 256x128 and 128x64, out_channels, last_stride, registry, state-dict round
trip, Inception-v3's minimum input size, and pretrained-weight loading (local files, offline ImageNet errors)."""
from __future__ import annotations

import urllib.error

import pytest
import torch

from reid.models import BACKBONES, WeightsError, build_backbone
from reid.models import weights as weights_module
from reid.models.backbones.inception import _inception_v3_map_size

ALL = ["resnet18", "resnet34", "resnet50", "resnet101", "googlenet", "inception_v3", "bn_inception", "nin_bn",
       "small"]

# (name, kwargs, input (H, W), expected (C, h, w)); the expected sizes follow from each network's strides
SHAPES = [
    ("resnet18", {}, (256, 128), (512, 16, 8)),  # last_stride 1 by default: stride 16
    ("resnet18", {}, (128, 64), (512, 8, 4)),
    ("resnet34", {}, (128, 64), (512, 8, 4)),
    ("resnet50", {}, (256, 128), (2048, 16, 8)),
    ("resnet50", {}, (128, 64), (2048, 8, 4)),
    ("resnet101", {}, (128, 64), (2048, 8, 4)),
    ("googlenet", {}, (256, 128), (1024, 8, 4)),
    ("googlenet", {}, (128, 64), (1024, 4, 2)),
    ("inception_v3", {}, (256, 128), (2048, 6, 2)),
    ("inception_v3", {"last_stride": 1}, (128, 64), (2048, 6, 2)),
    ("bn_inception", {}, (256, 128), (1024, 8, 4)),
    ("bn_inception", {}, (128, 64), (1024, 4, 2)),
    ("bn_inception", {}, (224, 112), (1024, 7, 4)),  # DarkRank's random crop: odd sizes through the strided pools
    ("nin_bn", {}, (256, 128), (1024, 8, 4)),
    ("nin_bn", {}, (128, 64), (1024, 4, 2)),
    ("small", {}, (256, 128), (256, 16, 8)),  # stride 16: small maps keep detail at 128x64
    ("small", {}, (128, 64), (256, 8, 4)),
]


@pytest.mark.parametrize("name,kwargs,size,expected", SHAPES, ids=[f"{s[0]}-{s[2][0]}x{s[2][1]}" for s in SHAPES])
def test_feature_map_shapes(name, kwargs, size, expected):
    net = build_backbone(name, **kwargs).eval()
    with torch.no_grad():
        fmap = net(torch.randn(2, 3, *size))
    assert tuple(fmap.shape) == (2, *expected)
    assert net.out_channels == expected[0]
    assert torch.isfinite(fmap).all()


@pytest.mark.parametrize("name", ["resnet50", "googlenet", "bn_inception", "nin_bn", "small"])
def test_last_stride_one_doubles_the_map(name):
    x = torch.randn(1, 3, 128, 64)
    with torch.no_grad():
        a = build_backbone(name, last_stride=2).eval()(x)
        b = build_backbone(name, last_stride=1).eval()(x)
    assert b.shape[-2:] == (2 * a.shape[-2], 2 * a.shape[-1])


def test_last_stride_must_be_one_or_two():
    with pytest.raises(ValueError, match="last_stride must be 1 or 2, got 3"):
        build_backbone("small", last_stride=3)


def test_inception_v3_minimum_input_size_is_exact():
    for last_stride, minimum in ((2, 75), (1, 43)):
        net = build_backbone("inception_v3", last_stride=last_stride).eval()
        assert net.min_size == minimum
        with torch.no_grad():
            assert net(torch.randn(1, 3, minimum, minimum)).shape == (1, 2048, 1, 1)
            with pytest.raises(ValueError, match=f"inception_v3 .*at least {minimum}x{minimum}.*got \\(128, 64\\)"
                               if minimum == 75 else f"at least {minimum}x{minimum}.*got \\(42, 42\\)"):
                net(torch.randn(1, 3, 128, 64) if minimum == 75 else torch.randn(1, 3, 42, 42))
            # the size check is not conservative: one pixel less really breaks the network itself
            with pytest.raises(RuntimeError):
                super(type(net), net).forward(torch.randn(1, 3, minimum - 1, minimum - 1))
    assert _inception_v3_map_size(256, 2) == 6 and _inception_v3_map_size(299, 2) == 8


def test_registry_lists_backbones_and_unknown_name_lists_known_ones():
    assert set(ALL) <= set(BACKBONES.names())
    with pytest.raises(KeyError, match="unknown backbone 'resnet05'.*Did you mean 'resnet50'.*Known: .*bn_inception"):
        build_backbone("resnet05")


@pytest.mark.parametrize("name", ["resnet18", "bn_inception", "nin_bn", "small", "googlenet"])
def test_state_dict_round_trip(name, tmp_path):
    torch.manual_seed(1)
    a = build_backbone(name).eval()
    torch.manual_seed(2)
    b = build_backbone(name).eval()
    torch.save(a.state_dict(), tmp_path / "a.pth")
    b.load_state_dict(torch.load(tmp_path / "a.pth", weights_only=True))
    x = torch.randn(2, 3, 128, 64)
    with torch.no_grad():
        assert torch.equal(a(x), b(x))


def test_nin_bn_is_lighter_than_bn_inception():
    nin = sum(p.numel() for p in build_backbone("nin_bn").parameters())
    bni = sum(p.numel() for p in build_backbone("bn_inception").parameters())
    small = sum(p.numel() for p in build_backbone("small").parameters())
    assert nin < bni and 0.5e6 <= small <= 2e6


# --- BN-Inception and the converted Caffe checkpoint (Cadene's pretrainedmodels 'bn_inception') -----------------

# Inception blocks: (name, input channels, 1x1, 3x3 reduce, 3x3, double reduce, double 3x3, pool proj); 0 = absent
CHECKPOINT_BLOCKS = [("3a", 192, 64, 64, 64, 64, 96, 32), ("3b", 256, 64, 64, 96, 64, 96, 64),
                     ("3c", 320, 0, 128, 160, 64, 96, 0), ("4a", 576, 224, 64, 96, 96, 128, 128),
                     ("4b", 576, 192, 96, 128, 96, 128, 128), ("4c", 576, 160, 128, 160, 128, 160, 128),
                     ("4d", 608, 96, 128, 192, 160, 192, 128), ("4e", 608, 0, 128, 192, 192, 256, 0),
                     ("5a", 1056, 352, 192, 320, 160, 224, 128), ("5b", 1024, 352, 192, 320, 192, 224, 128)]


def converted_checkpoint_shapes():
    """Key -> shape of the converted checkpoint, written from the BN-Inception paper's table (no num_batches_tracked:
    it predates PyTorch 0.4), with its 1000-way `last_linear`."""
    convs = [("conv1_7x7_s2", 3, 64, 7), ("conv2_3x3_reduce", 64, 64, 1), ("conv2_3x3", 64, 192, 3)]
    for name, cin, c1, r3, c3, rd, cd, proj in CHECKPOINT_BLOCKS:
        p = f"inception_{name}"
        if c1:
            convs.append((f"{p}_1x1", cin, c1, 1))
        convs += [(f"{p}_3x3_reduce", cin, r3, 1), (f"{p}_3x3", r3, c3, 3), (f"{p}_double_3x3_reduce", cin, rd, 1),
                  (f"{p}_double_3x3_1", rd, cd, 3), (f"{p}_double_3x3_2", cd, cd, 3)]
        if proj:
            convs.append((f"{p}_pool_proj", cin, proj, 1))
    shapes = {}
    for name, cin, cout, k in convs:
        shapes[f"{name}.weight"], shapes[f"{name}.bias"] = (cout, cin, k, k), (cout,)
        for stat in ("weight", "bias", "running_mean", "running_var"):
            shapes[f"{name}_bn.{stat}"] = (cout,)
    shapes["last_linear.weight"], shapes["last_linear.bias"] = (1000, 1024), (1000,)
    return shapes


def test_bn_inception_parameter_names_match_the_converted_checkpoint():
    ours = {k: tuple(v.shape) for k, v in build_backbone("bn_inception").state_dict().items()
            if not k.endswith("num_batches_tracked")}
    theirs = {k: v for k, v in converted_checkpoint_shapes().items() if not k.startswith("last_linear")}
    assert ours == theirs


def test_bn_inception_loads_a_converted_checkpoint_without_warnings(tmp_path):
    g = torch.Generator().manual_seed(0)
    state = {k: torch.rand(shape, generator=g) + 0.5 for k, shape in converted_checkpoint_shapes().items()}
    torch.save(state, tmp_path / "bn_inception-9f5701afb96c8044.pth")
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("error")  # counters missing from old checkpoints are not worth a warning
        net = build_backbone("bn_inception", pretrained=str(tmp_path / "bn_inception-9f5701afb96c8044.pth"))
    own = net.state_dict()
    for key, value in state.items():
        if not key.startswith("last_linear"):
            assert torch.equal(own[key], value), key


# --- weight loading ----------------------------------------------------------------------------------------------

def test_local_file_prefixes_stripped_classifier_dropped_missing_keys_reported(tmp_path):
    source = build_backbone("small")
    state = {f"module.backbone.{k}": v + 1 for k, v in source.state_dict().items() if k != "stem.1.running_var"}
    state["module.fc.weight"] = torch.zeros(10, 256)
    state["module.classifier.weight"] = torch.zeros(10, 256)
    state["module.backbone.extra.weight"] = torch.zeros(3)
    torch.save({"state_dict": state}, tmp_path / "ckpt.pth")
    with pytest.warns(UserWarning, match=r"1 missing keys \(stem\.1\.running_var\), 1 unexpected keys \(extra\.weight\)"):
        net = build_backbone("small", pretrained=str(tmp_path / "ckpt.pth"))
    assert torch.equal(net.stem[0].weight, source.stem[0].weight + 1)
    assert torch.equal(net.stem[1].running_var, torch.ones(32))  # untouched default


def test_local_file_errors(tmp_path):
    missing = tmp_path / "nowhere" / "weights.pth"
    with pytest.raises(WeightsError, match=f"file {missing} not found"):
        build_backbone("small", pretrained=str(missing))
    (tmp_path / "junk.pth").write_bytes(b"not a checkpoint")
    with pytest.raises(WeightsError, match="junk.pth is not a loadable state dict"):
        build_backbone("small", pretrained=str(tmp_path / "junk.pth"))
    torch.save([1, 2], tmp_path / "list.pth")
    with pytest.raises(WeightsError, match="list.pth does not hold a state dict"):
        build_backbone("small", pretrained=str(tmp_path / "list.pth"))
    torch.save({"stem.0.weight": torch.zeros(8, 3, 3, 3)}, tmp_path / "shape.pth")
    with pytest.raises(WeightsError, match=r"shapes differ .*stem\.0\.weight \(8, 3, 3, 3\) vs \(32, 3, 3, 3\)"):
        build_backbone("small", pretrained=str(tmp_path / "shape.pth"))


@pytest.mark.parametrize("name", ["bn_inception", "nin_bn", "small"])
def test_imagenet_for_hand_written_backbones_asks_for_a_path(name):
    with pytest.raises(WeightsError, match=f"no ImageNet weights .*'{name}'.*path of a converted state dict"):
        build_backbone(name, pretrained="imagenet")


@pytest.mark.parametrize("error", [urllib.error.URLError("no route to host"), OSError("network is unreachable")])
def test_imagenet_offline_error_tells_to_pass_a_path(monkeypatch, error):
    requested = []

    def offline(name):
        requested.append(name)
        raise error

    monkeypatch.setattr(weights_module, "_download", offline)
    with pytest.raises(WeightsError, match="could not download ImageNet weights for 'resnet50'.*pass its path.*'none'"):
        build_backbone("resnet50", pretrained="imagenet")
    assert requested == ["resnet50"]


def test_imagenet_weights_go_through_torchvision_names(monkeypatch):
    """The download itself is replaced: the torchvision weights enum name is what would be fetched."""
    net = build_backbone("resnet18")
    monkeypatch.setattr(weights_module, "_download", lambda name: {f"{k}": v * 0 for k, v in net.state_dict().items()})
    loaded = build_backbone("resnet18", pretrained="imagenet")
    assert float(loaded.conv1.weight.detach().abs().sum()) == 0
    import torchvision

    for name, enum in weights_module.TORCHVISION_WEIGHTS.items():
        assert torchvision.models.get_weight(enum).meta["categories"][0] == "tench", name
