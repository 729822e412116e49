"""Dataset adapters: one registry, each adapter producing a `ReIDDataset` from the release's on-disk format."""
from __future__ import annotations

import inspect
from typing import Any, List, Mapping, Tuple

from ...registry import Registry
from .base import BACKGROUND_PID, DISTRACTOR_PID, JUNK_PID, DatasetError, ReIDDataset, Sample

DATASETS = Registry("dataset")


def dataset_options(name: str) -> List[str]:
    """The keyword options adapter `name` accepts (besides `root`), following `**kwargs` to its base classes
    (the synthetic set passes them on to Market-1501); KeyError for an unknown name."""
    options: List[str] = []
    for cls in inspect.getmro(DATASETS.get(name)):
        if "__init__" not in vars(cls):
            continue
        params = inspect.signature(cls.__init__).parameters.values()
        options += [p.name for p in params if p.name not in ("self", "root") and p.name not in options
                    and p.kind not in (p.VAR_KEYWORD, p.VAR_POSITIONAL)]
        if not any(p.kind is p.VAR_KEYWORD for p in params):
            break
    return options


def unknown_options(name: str, options: Mapping[str, Any]) -> Tuple[List[str], List[str]]:
    """(the keys of `options` that adapter `name` does not accept, sorted; the ones it accepts): the one check of
    dataset options, by `build_dataset` and by the config's builder (which names the config keys). KeyError for an
    unknown name."""
    valid = dataset_options(name)
    return sorted(set(options) - set(valid)), valid


def build_dataset(name: str, root: str = "datasets", **kwargs: Any) -> ReIDDataset:
    """Adapter `name` on `root`; an unknown option is a DatasetError naming it and the valid ones (checked here
    because Python's own 'unexpected keyword argument' message names neither the dataset nor the alternatives)."""
    unknown, valid = unknown_options(name, kwargs)
    if unknown:
        raise DatasetError(f"dataset '{name}': unknown option(s) {', '.join(unknown)}; valid: {', '.join(valid)}")
    return DATASETS.build(name, root=root, **kwargs)


from . import cuhk01, cuhk03, folder, market1501, synthetic  # noqa: E402,F401  (registration)

__all__ = ["DATASETS", "build_dataset", "dataset_options", "unknown_options", "Sample", "ReIDDataset", "DatasetError",
           "JUNK_PID", "BACKGROUND_PID", "DISTRACTOR_PID"]
