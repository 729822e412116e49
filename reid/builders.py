"""Build every component of a run from a resolved config: dataset, loaders, model, losses."""
from __future__ import annotations

import copy
import inspect
from typing import Any, Dict, List, Mapping, Optional

import torch

from .config import DEFAULTS, ConfigError


class MissingDatasetError(FileNotFoundError):
    """The configured dataset is not on disk; the message points to datasets/README.md."""


def _message(exc: BaseException) -> str:
    """An exception's text without the quotes str() puts around a KeyError's message."""
    return str(exc.args[0]) if isinstance(exc, KeyError) and exc.args else str(exc)


def build_dataset_from_config(cfg: Mapping[str, Any], **extra: Any):
    """The configured dataset; `extra` (test.dataset_kwargs and tool options) is merged over data.kwargs.

    Names and options are checked before anything is read: an unknown dataset, an unknown option or a value the
    adapter rejects is a ConfigError naming the config key, so the CLI prints one line instead of a traceback."""
    from .data.datasets import DatasetError, build_dataset, unknown_options

    data = cfg["data"]
    kwargs = dict(data["kwargs"] or {})
    kwargs.update(extra)
    name = data["dataset"]
    try:
        unknown, valid = unknown_options(name, kwargs)
    except KeyError as exc:
        raise ConfigError(f"data.dataset: {_message(exc)}") from None
    if unknown:
        keys = ", ".join(f"data.kwargs.{k}" if k in (data["kwargs"] or {}) else f"test.dataset_kwargs.{k}"
                         for k in unknown)
        raise ConfigError(f"unknown option(s) {keys} for dataset '{name}'; valid: {', '.join(valid) or 'none'}")
    try:
        return build_dataset(name, data["root"], **kwargs)
    except FileNotFoundError as exc:
        raise MissingDatasetError(
            f"dataset '{name}' not found under '{data['root']}': {exc}. "
            "See datasets/README.md for where each dataset goes."
        ) from None
    except DatasetError:
        raise
    except (TypeError, ValueError) as exc:  # a value of the wrong kind for one of the options
        raise ConfigError(f"dataset '{name}' with options {kwargs}: {exc}") from None


def train_samples(dataset) -> List[Any]:
    """The training samples (junk removed); a DatasetError when there are none, since training cannot start."""
    from .data.datasets import DatasetError

    samples = [s for s in dataset.train if s.pid >= 0]
    if not samples:
        root = getattr(dataset, "root", None)
        raise DatasetError(f"dataset '{dataset.name}'{f' under {root}' if root else ''} has no training images "
                           "(its train split is empty); add images or check data.root")
    return samples


def build_model_from_config(cfg: Mapping[str, Any], num_classes: Optional[int]) -> torch.nn.Module:
    """The configured `ReIDModel`; a backbone, pooling or classifier name that is not registered is a ConfigError
    naming the key and the registered names."""
    from .models import BACKBONES, CLASSIFIERS, POOLINGS, build_model
    from .models.backbones.timm_backbone import PREFIX as TIMM_PREFIX  # timm names are registered on first use

    model_cfg = copy.deepcopy(dict(cfg["model"]))
    if model_cfg.get("classifier") is not None:
        if num_classes is None:  # inference from a config alone: the classifier plays no part
            model_cfg["classifier"] = None
        model_cfg["num_classes"] = num_classes
    for key, registry in (("backbone", BACKBONES), ("pooling", POOLINGS), ("classifier", CLASSIFIERS)):
        name = model_cfg.get(key, DEFAULTS["model"][key])
        if (name is None and key == "classifier") or (isinstance(name, str) and (
                name in registry or (key == "backbone" and name.startswith(TIMM_PREFIX)))):
            continue
        raise ConfigError(f"model.{key}: {registry.unknown(name)}")
    try:
        return build_model(model_cfg)
    except ValueError as exc:  # bad model values (last_stride, embedding_dim, horde keys, ...) name themselves
        raise ConfigError(f"model: {exc}") from None


def _constructor_params(cls: Any) -> set:
    try:
        return set(inspect.signature(cls.__init__).parameters)
    except (TypeError, ValueError):
        return set()


def build_losses_from_config(cfg: Mapping[str, Any], num_classes: int, model: Optional[torch.nn.Module] = None,
                             teacher: Optional[torch.nn.Module] = None):
    """`CombinedLoss` from `loss.terms`; sizes a term needs (class count, student / teacher embedding dims for a
    FitNet regressor) are filled in from the run when the term does not give them."""
    from .losses import CombinedLoss
    from .losses.combined import check_term

    known = {"num_classes": num_classes,
             "student_dim": getattr(model, "embedding_dim", None),
             "teacher_dim": getattr(getattr(teacher, "model", teacher), "embedding_dim", None)}
    terms: List[Dict[str, Any]] = []
    for i, term in enumerate(cfg["loss"]["terms"] or []):
        try:
            term, cls = check_term(i, term)  # the checks CombinedLoss makes too, before any size is filled in
        except KeyError as exc:
            raise ConfigError(f"loss.terms[{i}].name: {_message(exc)}") from None
        except ValueError as exc:
            raise ConfigError(str(exc)) from None
        params = _constructor_params(cls)
        for key, value in known.items():
            if key in params and key not in term and value is not None:
                term[key] = value
        terms.append(term)
    try:
        return CombinedLoss(terms)
    except ValueError as exc:  # unknown loss parameters and bad values: messages name the term already
        raise ConfigError(str(exc)) from None


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    device = torch.device(name)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise RuntimeError(f"train.device '{name}' requested but CUDA is not available")
    return device
