"""Backbones from timm (`model.backbone: timm/<name>`, e.g. timm/resnet50, timm/convnext_tiny), when timm is
installed (`pip install "reid-toolkit[timm]"`).

The same contract as the built-in backbones: `forward(x)` returns the last feature map (B, C, h, w) and
`out_channels` is C. timm builds the network with `features_only=True`, so the classifier is dropped and the
parameter names are timm's own. `last_stride=1` doubles the final map (`reid.models.backbones.last_stride`):
`model.last_stride_mode: undilated` runs the last stage's strided convolutions at stride 1 (the default for
networks with depthwise convolutions, whose dilated form is ~100x slower on CPU), `dilated` asks timm for an
output stride of 16 (the default for the others, e.g. timm/resnet50); models that can do neither (e.g. ViTs) need
`model.last_stride: 2`. Names are registered in BACKBONES on first use, since timm knows
hundreds of models and importing it just to list them would slow every start.

Pretrained weights are timm's: `model.pretrained: imagenet` loads the model's default timm weights (the
Hugging Face cache, or a download); a file path is loaded by name through `reid.models.weights.load_pretrained`
(wrapper prefixes stripped, the classifier dropped, a file that places under 90% of the tensors refused).
"""
from __future__ import annotations

import difflib
from pathlib import Path
from typing import Any, List, Optional

import torch

from ...utils.optional import available, missing_message, require
from . import BACKBONES
from .last_stride import LAST_STRIDE_MODES, has_depthwise, undilate_last_stride

PREFIX = "timm/"


def timm_available() -> bool:
    return available("timm")


def _timm() -> Any:
    if not timm_available():  # asked first: the tests stand in for a machine without timm through it
        raise ValueError(missing_message("timm", "model.backbone 'timm/...'"))
    return require("timm", "model.backbone 'timm/...'", error=ValueError)


class TimmBackbone(torch.nn.Module):
    """A timm model's last feature map (B, C, h, w)."""

    def __init__(self, model_name: str, last_stride: int = 1, pretrained: Optional[str] = None,
                 last_stride_mode: Optional[str] = None) -> None:
        super().__init__()
        timm = _timm()
        if last_stride not in (1, 2):
            raise ValueError(f"timm/{model_name}: last_stride must be 1 or 2, got {last_stride!r}")
        if last_stride_mode not in (None, *LAST_STRIDE_MODES):
            raise ValueError(f"model.last_stride_mode: expected one of {', '.join(LAST_STRIDE_MODES)}, got "
                             f"{last_stride_mode!r}")
        if last_stride == 1 and last_stride_mode is None:  # decided on the architecture, built without weights
            probe = timm.create_model(model_name, pretrained=False)
            last_stride_mode = "undilated" if has_depthwise(probe) else "dilated"
        kwargs: dict = {"features_only": True, "out_indices": (-1,)}
        weights_file: Optional[Path] = None
        if last_stride == 1 and last_stride_mode == "dilated":
            kwargs["output_stride"] = 16
        if pretrained not in (None, "none"):
            kwargs["pretrained"] = True
            if pretrained != "imagenet":
                path = Path(str(pretrained)).expanduser()
                if not path.is_file():
                    raise ValueError(f"model.pretrained: file {path} not found (expected 'none', 'imagenet' or the "
                                     "path of a timm state dict)")
                # loaded below by our loader, by name with the share check (timm's own loading of a file
                # accepts one of another architecture with a warning and trains from scratch)
                del kwargs["pretrained"]
                weights_file = path
        try:
            self.body = timm.create_model(model_name, **kwargs)
        except (RuntimeError, ValueError, TypeError, AssertionError, KeyError, OSError) as exc:
            if kwargs.get("pretrained") and _builds_without_weights(timm, model_name, kwargs):
                # the architecture is fine: the weights are what failed (an unreadable or foreign file)
                from ..weights import WeightsError, load_error_reason

                raise WeightsError(f"model.pretrained: {pretrained} cannot be loaded into timm/{model_name} "
                                   f"({type(exc).__name__}: {load_error_reason(exc)})") from None
            hint = (" with last_stride=1 (output stride 16); set model.last_stride: 2"
                    if last_stride == 1 and last_stride_mode == "dilated" else "")
            raise ValueError(f"model.backbone 'timm/{model_name}': timm cannot build it as a feature-map "
                             f"backbone{hint} ({type(exc).__name__}: {exc})") from None
        if weights_file is not None:
            from ..weights import load_pretrained

            load_pretrained(self.body, f"timm/{model_name}", str(weights_file))
        if last_stride == 1 and last_stride_mode == "undilated":
            undilate_last_stride(self.body)
        self.last_stride_mode = last_stride_mode
        self.out_channels = int(self.body.feature_info.channels()[-1])
        # some timm feature extractors (e.g. Swin) return channels-last maps; the contract is (B, C, h, w)
        self.channels_last_output = getattr(self.body, "output_fmt", "NCHW") == "NHWC"
        self.model_name = model_name

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        fmap = self.body(x)[-1]
        return fmap.permute(0, 3, 1, 2) if self.channels_last_output else fmap


def _builds_without_weights(timm: Any, model_name: str, kwargs: dict) -> bool:
    """Whether timm builds the same network with no weights (so a failure with weights is the weights' fault)."""
    bare = {k: v for k, v in kwargs.items() if k not in ("pretrained", "pretrained_cfg_overlay")}
    try:
        timm.create_model(model_name, pretrained=False, **bare)
    except Exception:  # noqa: BLE001 - any failure means the architecture itself is the problem
        return False
    return True


def register_timm_backbone(name: str) -> str:
    """Register `timm/<model>` in BACKBONES (once); unknown models are an error naming the closest timm name."""
    if name in BACKBONES:
        return name
    model_name = name[len(PREFIX):]
    timm = _timm()
    if not model_name or not timm.is_model(model_name):
        known: List[str] = timm.list_models()
        close = difflib.get_close_matches(model_name, known, n=1)
        hint = f"; did you mean 'timm/{close[0]}'?" if close else " (timm.list_models() lists them)"
        raise ValueError(f"model.backbone '{name}': timm {timm.__version__} has no model '{model_name}'{hint}")

    def build(last_stride: int = 1, pretrained: Optional[str] = None,
              last_stride_mode: Optional[str] = None) -> TimmBackbone:
        return TimmBackbone(model_name, last_stride, pretrained, last_stride_mode)

    build.__name__ = build.__qualname__ = name
    build.__doc__ = f"timm's {model_name} (last feature map)."
    BACKBONES.register(name)(build)
    return name
