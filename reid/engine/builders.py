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
        if num_classes is None:  # inference from a config alone: the classifier plays no part
            model_cfg["classifier"] = None
        model_cfg["num_classes"] = num_classes
    return build_model(model_cfg)


def _constructor_params(cls: Any) -> set:
    try:
        return set(inspect.signature(cls.__init__).parameters)
    except (TypeError, ValueError):
        return set()


def build_losses_from_config(cfg: Mapping[str, Any], num_classes: int, model: Optional[torch.nn.Module] = None,
                             teacher: Optional[torch.nn.Module] = None):
    """`CombinedLoss` from `loss.terms`; sizes a term needs (class count, student / teacher embedding dims for a
    FitNet regressor) are filled in from the run when the term does not give them."""
    from ..losses import LOSSES, CombinedLoss

    known = {"num_classes": num_classes,
             "student_dim": getattr(model, "embedding_dim", None),
             "teacher_dim": getattr(getattr(teacher, "model", teacher), "embedding_dim", None)}
    terms: List[Dict[str, Any]] = []
    for i, term in enumerate(cfg["loss"]["terms"]):
        term = dict(term)
        if "name" not in term:
            raise ValueError(f"loss.terms[{i}] {term!r} has no 'name'")
        params = _constructor_params(LOSSES.get(term["name"]))
        for key, value in known.items():
            if key in params and key not in term and value is not None:
                term[key] = value
        terms.append(term)
    return CombinedLoss(terms)


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    device = torch.device(name)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise RuntimeError(f"train.device '{name}' requested but CUDA is not available")
    return device
