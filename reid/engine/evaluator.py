"""Feature extraction and evaluation of a model on a dataset's query/gallery split."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Dict, List, Mapping, Optional, Sequence, Tuple

import numpy as np
import torch

from ..utils.progress import progress as progress_bar
from . import distributed


@dataclass
class FeatureSet:
    features: torch.Tensor  # (N, D) float32 on CPU
    pids: np.ndarray
    camids: np.ndarray
    paths: List[str]


def loader_features(
    model: torch.nn.Module,
    loader: torch.utils.data.DataLoader,
    device: torch.device,
    flip: bool = False,
    amp: bool = False,
    desc: str = "features",
    progress: bool = True,
) -> Tuple[torch.Tensor, np.ndarray, np.ndarray]:
    """`reid.evaluation.extract_features` (the one extraction loop) fed the images of an ordered loader, with the
    loader's labels kept; `flip` averages with the mirrored image. Returns (features, pids, camids)."""
    from ..evaluation.features import extract_features

    pids, camids = [], []

    def images():
        # A bar on a terminal, ETA lines when redirected; only rank 0 reports so DDP logs are not multiplied.
        for batch in progress_bar(loader, desc, enabled=progress and distributed.is_main_process()):
            pids.append(batch["pid"].numpy())
            camids.append(batch["camid"].numpy())
            yield batch["img"]

    feats = extract_features(model, images(), device, flip=flip, amp=amp, desc=desc)
    return feats, np.concatenate(pids), np.concatenate(camids)


def feature_set(model, samples, loader, device, flip=False, amp=False, desc="features",
                progress: bool = True) -> FeatureSet:
    feats, pids, camids = loader_features(model, loader, device, flip=flip, amp=amp, desc=desc, progress=progress)
    return FeatureSet(feats, pids, camids, [s.path for s in samples])


def pool_groups(group_features: torch.Tensor, group_index: Sequence[Sequence[int]], mode: str) -> torch.Tensor:
    """Multi-query: mean or max over each query's group of feature rows, re-normalised."""
    pooled = []
    for rows in group_index:
        block = group_features[list(rows)]
        pooled.append(block.mean(0) if mode == "mean" else block.max(0).values)
    return torch.nn.functional.normalize(torch.stack(pooled), dim=1)


def evaluate_features(
    query: FeatureSet,
    gallery: FeatureSet,
    test_cfg: Mapping[str, Any],
    has_cameras: bool = True,
    query_features: Optional[torch.Tensor] = None,
):
    """Call `reid.evaluation.evaluate` with the options of the `test` config section."""
    from ..evaluation import evaluate
    from ..evaluation.verification import query_positions

    qf = query.features if query_features is None else query_features
    kwargs: Dict[str, Any] = dict(
        metric=test_cfg["metric"],
        ap=test_cfg["ap"],
        empty=test_cfg["empty"],
        max_rank=test_cfg["max_rank"],
        protocol=test_cfg["protocol"],
        trials=test_cfg["trials"],
        rerank=test_cfg["rerank"],
        k1=test_cfg["k1"],
        k2=test_cfg["k2"],
        lambda_value=test_cfg["lambda_value"],
    )
    if has_cameras:
        return evaluate(qf, gallery.features, query.pids, gallery.pids, query.camids, gallery.camids, **kwargs)
    # No camera information: only the query itself is removed from its ranking when it is in the gallery.
    return evaluate(qf, gallery.features, query.pids, gallery.pids, None, None,
                    query_in_gallery=query_positions(query.paths, gallery.paths), **kwargs)
