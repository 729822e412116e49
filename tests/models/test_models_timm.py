"""timm backbones (`model.backbone: timm/<name>`): the registry contract of the built-in backbones."""
from __future__ import annotations

import pytest
import torch

from reid.models import BACKBONES, build_backbone
from reid.models.backbones import timm_backbone

needs_timm = pytest.mark.skipif(not timm_backbone.timm_available(), reason="timm not installed (reid-toolkit[timm])")


@needs_timm
def test_timm_backbone_follows_the_contract():
    net = build_backbone("timm/resnet18").eval()
    assert "timm/resnet18" in BACKBONES.names()  # registered on first use, like any other name afterwards
    with torch.no_grad():
        fmap = net(torch.zeros(2, 3, 64, 32))
        half = build_backbone("timm/resnet18", last_stride=2).eval()(torch.zeros(2, 3, 64, 32))
    assert fmap.shape == (2, net.out_channels, 4, 2) and net.out_channels == 512
    assert half.shape == (2, 512, 2, 1)  # last_stride=1 doubles the final map, as for our ResNets


@needs_timm
def test_timm_backbone_in_a_reid_model_and_its_errors():
    from reid.models.model import build_model

    model = build_model({"backbone": "timm/resnet18", "embedding_dim": 16}).eval()
    with torch.no_grad():
        out = model(torch.zeros(2, 3, 64, 32))
    emb = out["normalized"] if isinstance(out, dict) else out
    assert emb.shape == (2, 16)
    torch.testing.assert_close(emb.norm(dim=1), torch.ones(2))
    with pytest.raises(ValueError, match="no model 'resnet1800'; did you mean 'timm/resnet18"):
        build_backbone("timm/resnet1800")
    with pytest.raises(ValueError, match="model.last_stride: 2"):  # ViTs have no output stride to halve
        build_backbone("timm/vit_tiny_patch16_224")


@needs_timm
def test_timm_backbone_loads_a_local_timm_state_dict(tmp_path):
    import timm

    source = timm.create_model("resnet18")
    torch.nn.init.constant_(source.conv1.weight, 0.5)
    torch.save(source.state_dict(), tmp_path / "r18.pth")
    net = build_backbone("timm/resnet18", pretrained=str(tmp_path / "r18.pth"))
    torch.testing.assert_close(net.body.conv1.weight, torch.full_like(net.body.conv1.weight, 0.5))
    with pytest.raises(ValueError, match="not found"):
        build_backbone("timm/resnet18", pretrained=str(tmp_path / "missing.pth"))


def test_missing_timm_is_one_clear_error(monkeypatch):
    monkeypatch.setattr(timm_backbone, "timm_available", lambda: False)
    with pytest.raises(ValueError, match=r"needs timm.*pip install 'reid-toolkit\[timm\]'"):
        build_backbone("timm/some_model_never_registered")
