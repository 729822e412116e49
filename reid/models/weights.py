"""Pretrained weights: torchvision's ImageNet weights API, or a local state-dict file."""
from __future__ import annotations

import warnings
from pathlib import Path
from typing import Dict

import torch

TORCHVISION_WEIGHTS = {
    "resnet18": "ResNet18_Weights.IMAGENET1K_V1",
    "resnet34": "ResNet34_Weights.IMAGENET1K_V1",
    "resnet50": "ResNet50_Weights.IMAGENET1K_V1",
    "resnet101": "ResNet101_Weights.IMAGENET1K_V1",
    "googlenet": "GoogLeNet_Weights.IMAGENET1K_V1",
    "inception_v3": "Inception_V3_Weights.IMAGENET1K_V1",
}
PREFIXES = ("module.", "backbone.", "model.")
HEAD_KEYS = ("fc.", "last_linear.", "classifier.", "aux_logits", "AuxLogits.")


class WeightsError(RuntimeError):
    """Pretrained weights that cannot be obtained or do not fit."""


def _download(name: str) -> Dict[str, torch.Tensor]:
    import torchvision

    return torchvision.models.get_weight(TORCHVISION_WEIGHTS[name]).get_state_dict(progress=True)


def load_pretrained(model: torch.nn.Module, name: str, pretrained: str) -> None:
    if pretrained in (None, "none", False):
        return
    if pretrained == "imagenet":
        if name not in TORCHVISION_WEIGHTS:
            raise WeightsError(f"no ImageNet weights are distributed for backbone '{name}' through torchvision; "
                               "pass the path of a converted state dict as model.pretrained, or 'none'")
        try:
            state = _download(name)
        except (OSError, RuntimeError, ValueError) as exc:  # URLError is an OSError
            raise WeightsError(f"could not download ImageNet weights for '{name}' ({exc}); on an offline machine "
                               "place the .pth file locally and pass its path as model.pretrained, or use 'none'"
                               ) from None
        source = f"torchvision {TORCHVISION_WEIGHTS[name]}"
    else:
        path = Path(pretrained)
        if not path.is_file():
            raise WeightsError(f"model.pretrained: file {path} not found (expected 'none', 'imagenet' or a path)")
        state = torch.load(path, map_location="cpu", weights_only=True)
        if isinstance(state, dict) and "state_dict" in state:
            state = state["state_dict"]
        source = str(path)
    cleaned = {}
    for key, value in state.items():
        for prefix in PREFIXES:
            if key.startswith(prefix):
                key = key[len(prefix):]
        if not key.startswith(HEAD_KEYS):
            cleaned[key] = value
    own = model.state_dict()
    shape_mismatch = [k for k, v in cleaned.items() if k in own and own[k].shape != v.shape]
    if shape_mismatch:
        raise WeightsError(f"{source}: shapes differ for {', '.join(shape_mismatch[:5])}")
    result = model.load_state_dict(cleaned, strict=False)
    if result.missing_keys or result.unexpected_keys:
        warnings.warn(f"pretrained weights {source}: {len(result.missing_keys)} missing keys "
                      f"({', '.join(result.missing_keys[:5])}), {len(result.unexpected_keys)} unexpected keys "
                      f"({', '.join(result.unexpected_keys[:5])})")
