"""Pretrained backbone weights: torchvision's ImageNet weights API, or a local state-dict file.

`pretrained` is 'none', 'imagenet' (torchvision backbones only; needs the network or torch.hub's cache) or the path
of a state dict. Local files are read with `torch.load(weights_only=True)` (no pickled code runs); wrapper prefixes
('module.' from DataParallel/DDP, 'backbone.', 'model.') are stripped and classifier weights (fc., last_linear.,
classifier., aux logits) dropped, then the rest is loaded with strict=False and missing/unexpected keys are reported.
"""
from __future__ import annotations

import logging
import warnings
from pathlib import Path
from typing import Dict, List, NamedTuple, Optional

import torch

logger = logging.getLogger(__name__)

TORCHVISION_WEIGHTS = {
    "resnet18": "ResNet18_Weights.IMAGENET1K_V1",
    "resnet34": "ResNet34_Weights.IMAGENET1K_V1",
    "resnet50": "ResNet50_Weights.IMAGENET1K_V1",
    "resnet101": "ResNet101_Weights.IMAGENET1K_V1",
    "googlenet": "GoogLeNet_Weights.IMAGENET1K_V1",
    "inception_v3": "Inception_V3_Weights.IMAGENET1K_V1",
}
PREFIXES = ("module.", "backbone.", "model.")
HEAD_KEYS = ("fc.", "last_linear.", "classifier.", "aux_logits", "AuxLogits.", "aux1.", "aux2.")


# A file that places fewer of the backbone's tensors than this is another architecture's (training would go on
# from scratch with a warning nobody reads); converted files miss a few BN buffers at most.
MIN_LOADED_SHARE = 0.9


class WeightsError(RuntimeError):
    """Pretrained weights that cannot be obtained or do not fit the backbone."""


class LoadReport(NamedTuple):
    source: str
    loaded: int
    missing_keys: List[str]
    unexpected_keys: List[str]


def _download(name: str) -> Dict[str, torch.Tensor]:
    """torchvision's ImageNet state dict for backbone `name` (torch.hub cache, else a download)."""
    import torchvision

    return torchvision.models.get_weight(TORCHVISION_WEIGHTS[name]).get_state_dict(progress=True)


def load_error_reason(exc: BaseException) -> str:
    """torch.load's failure in one short line.

    Its weights-only message spans paragraphs and suggests weights_only=False, which would run pickled code from
    the file; only the actual reason is kept (errors are printed as one line by the tools)."""
    text = " ".join(str(exc).split())
    marker = "WeightsUnpickler error:"
    if marker in text:
        text = "not a plain tensor file (pickled objects are never loaded): " + \
            text.split(marker, 1)[1].split("Check the documentation", 1)[0].strip()
    return text if len(text) <= 200 else text[:197] + "..."


def _offline_hint(name: str) -> str:
    """Where the ImageNet file comes from and the two ways to supply it without the network."""
    try:
        import torchvision

        url = torchvision.models.get_weight(TORCHVISION_WEIGHTS[name]).url
        cache = Path(torch.hub.get_dir()) / "checkpoints"
    except Exception:  # noqa: BLE001 - only a hint: fall back to the generic advice
        return "place the .pth file locally and pass its path as model.pretrained"
    file = url.rsplit("/", 1)[-1]
    return (f"fetch {url} elsewhere and pass its path as model.pretrained=/path/to/{file} (or put it in {cache}/, "
            "where 'imagenet' finds it)")


def _read_file(path: Path) -> Dict[str, torch.Tensor]:
    if not path.is_file():
        what = "is a folder, not a file" if path.is_dir() else "not found"
        raise WeightsError(f"model.pretrained: file {path} {what} (expected 'none', 'imagenet' or the path of "
                           "a state dict)")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # unpickling errors have no common base class
        raise WeightsError(f"model.pretrained: {path} is not a loadable state dict ({load_error_reason(exc)})"
                           ) from None
    if isinstance(state, dict) and isinstance(state.get("state_dict"), dict):  # a training checkpoint
        state = state["state_dict"]
    elif isinstance(state, dict) and isinstance(state.get("model"), dict):
        state = state["model"]
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise WeightsError(f"model.pretrained: {path} does not hold a state dict (a mapping of names to tensors)")
    return state


def clean_state_dict(state: Dict[str, torch.Tensor]) -> Dict[str, torch.Tensor]:
    """Strip wrapper prefixes and drop classifier entries."""
    cleaned = {}
    for key, value in state.items():
        stripped = True
        while stripped:  # e.g. 'module.backbone.' from a DDP-wrapped re-ID model
            stripped = False
            for prefix in PREFIXES:
                if key.startswith(prefix):
                    key, stripped = key[len(prefix):], True
        if not key.startswith(HEAD_KEYS):
            cleaned[key] = value
    return cleaned


def load_pretrained(model: torch.nn.Module, name: str, pretrained: Optional[str]) -> Optional[LoadReport]:
    """Load `pretrained` ('none' | 'imagenet' | path) into backbone `model` (registered as `name`).

    Returns a LoadReport (None for 'none'); missing/unexpected keys are logged and warned about; shape mismatches
    and unobtainable weights raise WeightsError."""
    if pretrained in (None, "none", False):
        return None
    if pretrained == "imagenet":
        if name not in TORCHVISION_WEIGHTS:
            raise WeightsError(f"no ImageNet weights are distributed for backbone '{name}' through torchvision "
                               f"(available for {', '.join(TORCHVISION_WEIGHTS)}); pass the path of a converted "
                               "state dict as model.pretrained, or 'none'")
        try:
            state = _download(name)
        except (OSError, RuntimeError, ValueError) as exc:  # urllib's URLError is an OSError
            raise WeightsError(f"could not download ImageNet weights for '{name}' ({exc}); on an offline machine "
                               f"{_offline_hint(name)}, or use 'none'") from None
        source = f"torchvision {TORCHVISION_WEIGHTS[name]}"
    else:
        path = Path(str(pretrained)).expanduser()
        state = _read_file(path)
        source = str(path)
    cleaned = clean_state_dict(state)
    own = model.state_dict()
    mismatch = [f"{k} {tuple(v.shape)} vs {tuple(own[k].shape)}" for k, v in cleaned.items()
                if k in own and own[k].shape != v.shape]
    if mismatch:
        raise WeightsError(f"{source}: tensor shapes differ from backbone '{name}' for {', '.join(mismatch[:5])}"
                           + (f" and {len(mismatch) - 5} more" if len(mismatch) > 5 else ""))
    wanted = _tensors(own)
    found = [k for k in wanted if k in cleaned]
    if len(found) < MIN_LOADED_SHARE * len(wanted):
        stray = [k for k in cleaned if k not in own]
        raise WeightsError(
            f"{source} fits backbone '{name}' badly: {len(found)} of its {len(wanted)} tensors are in the file "
            f"(at least {MIN_LOADED_SHARE:.0%} expected); the file's names look like "
            f"{', '.join(stray[:3]) or '(none)'}, the backbone's like {', '.join(wanted[:3])}: a checkpoint of "
            "another architecture? Use the matching model.backbone, or model.pretrained: none")
    result = model.load_state_dict(cleaned, strict=False)
    # BatchNorm's step counters are absent from checkpoints converted before PyTorch 0.4 (e.g. the widely used
    # BN-Inception one); they only matter for momentum=None, so they are not worth a warning
    missing = [k for k in result.missing_keys if not k.endswith("num_batches_tracked")]
    report = LoadReport(source, len(cleaned) - len(result.unexpected_keys), missing, list(result.unexpected_keys))
    if report.missing_keys or report.unexpected_keys:
        message = (f"pretrained weights {source} for '{name}': {len(report.missing_keys)} missing keys "
                   f"({', '.join(report.missing_keys[:5])}), {len(report.unexpected_keys)} unexpected keys "
                   f"({', '.join(report.unexpected_keys[:5])})")
        logger.warning(message)
        warnings.warn(message)
    else:
        logger.info("loaded %d tensors from %s into '%s'", report.loaded, source, name)
    return report


def _tensors(state: Dict[str, torch.Tensor]) -> List[str]:
    """The keys that carry weights (BatchNorm step counters carry none)."""
    return [k for k in state if not k.endswith("num_batches_tracked")]


def load_by_order(model: torch.nn.Module, path: str, name: str,
                  optional_prefixes: tuple = ()) -> LoadReport:
    """Load the state dict at `path` into `model` strictly: by name when the file uses the model's own names, else
    by order and shape (files of another library's layout of the same architecture list their tensors in the same
    order, e.g. lukemelas' EfficientNet and tonylins' MobileNetV2 against timm's).

    Every tensor of the model must be placed, except those under `optional_prefixes` (a classifier the file may
    lack); a file with another number of tensors or any shape that differs is a WeightsError naming the file and
    the first mismatch."""
    file = Path(str(path)).expanduser()
    state = _read_file(file)
    own = model.state_dict()
    own_keys = _tensors(own)
    required = [k for k in own_keys if not k.startswith(optional_prefixes)]
    keys = _tensors(state)
    if set(own_keys) <= set(state) or set(required) == set(keys):  # the model's own names
        pairs = [(k, k) for k in own_keys if k in state]
    else:
        target = own_keys if len(keys) == len(own_keys) else required
        if len(keys) != len(target):
            raise WeightsError(f"model.pretrained: {file} holds {len(keys)} tensors but backbone '{name}' has "
                               f"{len(required)} (+{len(own_keys) - len(required)} optional): not a '{name}' "
                               "checkpoint, or a truncated one")
        pairs = list(zip(keys, target))
    for src, dst in pairs:
        if state[src].shape != own[dst].shape:
            raise WeightsError(f"model.pretrained: {file} does not fit backbone '{name}': '{src}' "
                               f"{tuple(state[src].shape)} vs '{dst}' {tuple(own[dst].shape)}")
    placed = {dst: state[src] for src, dst in pairs}
    missing = [k for k in required if k not in placed]
    if missing:
        raise WeightsError(f"model.pretrained: {file} lacks {len(missing)} tensors of backbone '{name}' "
                           f"({', '.join(missing[:5])})")
    with torch.no_grad():
        for key, value in placed.items():
            own[key].copy_(value)
    logger.info("loaded %d tensors from %s into '%s'", len(placed), file, name)
    return LoadReport(str(file), len(placed), [k for k in own_keys if k not in placed], [])
