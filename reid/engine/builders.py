"""Build every component of a run from a resolved config: dataset, loaders, model, losses."""
from __future__ import annotations

import copy
import inspect
from typing import Any, Dict, List, Mapping, Optional

import torch


class MissingDatasetError(FileNotFoundError):
    """The configured dataset is not on disk; the message points to datasets/README.md."""


def build_dataset_from_config(cfg: Mapping[str, Any], **extra: Any):
    from ..data.datasets import build_dataset

    data = cfg["data"]
    kwargs = dict(data["kwargs"] or {})
    kwargs.update(extra)
    try:
        return build_dataset(data["dataset"], data["root"], **kwargs)
    except FileNotFoundError as exc:
        raise MissingDatasetError(
            f"dataset '{data['dataset']}' not found under '{data['root']}': {exc}. "
            "See datasets/README.md for where each dataset goes."
        ) from None


def train_samples(dataset) -> List[Any]:
    return [s for s in dataset.train if s.pid >= 0]


def build_model_from_config(cfg: Mapping[str, Any], num_classes: Optional[int]) -> torch.nn.Module:
    from ..models import build_model

    model_cfg = copy.deepcopy(dict(cfg["model"]))
    if model_cfg.get("classifier") is not None:
        model_cfg["num_classes"] = num_classes
    return build_model(model_cfg)


def _takes_num_classes(cls: Any) -> bool:
    """Whether a loss's constructor names `num_classes` explicitly (e.g. per-class alpha_c, classifiers)."""
    try:
        return "num_classes" in inspect.signature(cls.__init__).parameters
    except (TypeError, ValueError):
        return False


def build_losses_from_config(cfg: Mapping[str, Any], num_classes: int, model: Optional[torch.nn.Module] = None):
    """`CombinedLoss` from `loss.terms`; terms that take `num_classes` get the training class count."""
    from ..losses import LOSSES, CombinedLoss

    terms: List[Dict[str, Any]] = []
    for term in cfg["loss"]["terms"]:
        term = dict(term)
        if "name" not in term:
            raise ValueError(f"loss.terms entry {term!r} has no 'name'")
        cls = LOSSES.get(term["name"])
        if "num_classes" not in term and _takes_num_classes(cls):
            term["num_classes"] = num_classes
        terms.append(term)
    return CombinedLoss(terms)


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    device = torch.device(name)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise RuntimeError(f"train.device '{name}' requested but CUDA is not available")
    return device
