"""Testing a trained checkpoint: feature extraction, the evaluation options of tools/test.py, results files."""
from __future__ import annotations

import copy
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Dict, List, Mapping, Optional, Sequence, Tuple

import numpy as np
import torch

from ..builders import build_dataset_from_config, resolve_device
from ..checkpoint import load_model_from_checkpoint
from .evaluator import FeatureSet, evaluate_features, feature_set, pool_groups
from .data_setup import SplitImages
from .ranklists import write_ranklists

if TYPE_CHECKING:
    from ..evaluation.verification import VerificationReport


@dataclass
class TestOptions:
    """reid-test's flags. None means "as the config says": the config's `test` section is the one home of test
    options (flip: `train.flip_test`, as in the evaluations during training), and a flag only overrides it."""

    rerank: Optional[bool] = None
    k1: Optional[int] = None
    k2: Optional[int] = None
    lambda_value: Optional[float] = None
    multi_query: Optional[str] = None  # mean | max
    distractors: Optional[str] = None  # folder of distractor images appended to the gallery
    ap: Optional[str] = None
    protocol: Optional[str] = None
    high_order: Optional[bool] = None
    flip: Optional[bool] = None
    visualize: int = 0
    output_dir: Optional[str] = None
    verification: Optional[float] = None  # a FAR: write the verification report with the threshold for it
    extra: Dict[str, Any] = field(default_factory=dict)


# TestOptions fields that are keys of the config's `test` section
TEST_KEYS = ("rerank", "k1", "k2", "lambda_value", "multi_query", "ap", "protocol", "high_order")


def resolve_test_config(cfg: Mapping[str, Any], options: TestOptions) -> Dict[str, Any]:
    """The config with the flags that were given written into it (validated like config overrides)."""
    from ..config import merge

    update: Dict[str, Any] = {"test": {k: getattr(options, k) for k in TEST_KEYS if getattr(options, k) is not None}}
    if options.distractors is not None:
        kwargs = dict(cfg["test"].get("dataset_kwargs") or {})
        update["test"]["dataset_kwargs"] = {**kwargs, "distractors": options.distractors}
    if options.flip is not None:
        update["train"] = {"flip_test": options.flip}
    return merge(copy.deepcopy(dict(cfg)), update, "command-line flags")


def load_trained_model(cfg: Mapping[str, Any], checkpoint: str, device: torch.device) -> torch.nn.Module:
    """Build the config's model and load a checkpoint's weights (`reid.checkpoint.load_model_from_checkpoint`)."""
    return load_model_from_checkpoint(checkpoint, cfg, device)[0]


class EvalImages(SplitImages):
    """Test loaders under the run's data policy (`reid.engine.data_setup.SplitImages`, as the trainer's evaluations).

    Tensor pipeline (`data.pipeline`, unless a transform has no batched form): each split is decoded once into the
    decoded-image cache (`data.cache_dir`: None = next to the data root, or `<run_dir>/cache` when the root is
    read-only; "off" = in memory, no file) and its batches come from the decoded array; a split over
    `data.cache_max_gb` is read per file. Either way its files are checked first and a bad one is an error naming
    it. Albumentations pipeline: per file, as before the cache existed (an unreadable file raises when reached).
    """

    def __init__(self, cfg: Mapping[str, Any], run_dir: Path, progress: bool = True) -> None:
        def log(message: str) -> None:
            if progress:
                print(message, file=sys.stderr, flush=True)

        # data.cache_dir is resolved only where it is used: this pipeline decodes into it
        super().__init__(cfg, run_dir, log, progress, cache_always=False)

    def loader(self, samples: Sequence[Any], split: str, num_workers: int = 0):
        """An ordered loader over `samples` (decoded now on the tensor pipeline; bad files raise here)."""
        self.check_split(samples, split, check_files=False)
        return self.test_loader(samples, split, num_workers)


def run_test(cfg: Mapping[str, Any], checkpoint: str, options: TestOptions, progress: bool = True):
    """Evaluate `checkpoint` on the config's dataset: its `test` section, overridden by the flags in `options`.

    Returns (EvaluationResult, output folder). Writes `results.json` and, with `visualize`, rank-list PNGs.
    Images are read as `EvalImages` says (the decoded-image cache on the tensor pipeline).
    """
    cfg = resolve_test_config(cfg, options)
    test_cfg = cfg["test"]
    multi_query = test_cfg.get("multi_query")
    flip = bool(cfg["train"]["flip_test"])
    device = resolve_device(cfg["train"]["device"])

    extra: Dict[str, Any] = dict(test_cfg.get("dataset_kwargs") or {})
    if multi_query:
        extra["multi_query"] = True
    dataset = build_dataset_from_config(cfg, **extra)
    model = load_trained_model(cfg, checkpoint, device)
    if test_cfg["high_order"]:
        # HORDE at test time: order 1 and every high-order embedding concatenated (reid.models.model)
        if getattr(model, "horde", None) is None:
            raise ValueError(f"test.high_order is true but the model of {checkpoint} has no HORDE branch "
                             "(model.horde is null); set test.high_order=false (or drop --high-order)")
        model.test_high_order = True

    out_dir = Path(options.output_dir or Path(checkpoint).parent / "test")
    images = EvalImages(cfg, out_dir, progress)
    workers = cfg["data"]["num_workers"]
    # every split's files checked (and decoded) before the first feature is extracted
    q_loader = images.loader(dataset.query, "query", workers)
    g_loader = images.loader(dataset.gallery, "gallery", workers)
    mq_samples, mq_rows = _multi_query_groups(dataset) if multi_query else ([], [])
    mq_loader = images.loader(mq_samples, "multi-query") if multi_query else None
    query = feature_set(model, dataset.query, q_loader, device, flip=flip, desc="query", progress=progress)
    gallery = feature_set(model, dataset.gallery, g_loader, device, flip=flip, desc="gallery", progress=progress)

    query_features = None
    if multi_query:
        feats = feature_set(model, mq_samples, mq_loader, device, flip=flip, desc="multi-query",
                            progress=progress).features
        query_features = pool_groups(feats, mq_rows, multi_query)
    result = evaluate_features(query, gallery, test_cfg, has_cameras=dataset.has_cameras,
                               query_features=query_features)
    out_dir.mkdir(parents=True, exist_ok=True)
    result.save_json(out_dir / "results.json")
    if options.visualize:
        write_ranklists(query, gallery, out_dir / "ranklists", options.visualize, seed=cfg["seed"],
                        has_cameras=dataset.has_cameras, camera_base=getattr(dataset, "camera_base", 1))
    if options.verification is not None:
        report = write_verification(query, gallery, out_dir, options.verification, metric=test_cfg["metric"],
                                    has_cameras=dataset.has_cameras, query_features=query_features)
        print(report.table())
    return result, out_dir


def _multi_query_groups(dataset) -> Tuple[List[Any], List[List[int]]]:
    """Multi-query: the distinct images of every query's group (the query alone when its group is empty) as
    samples, and each query's rows among them."""
    groups = getattr(dataset, "query_groups", None)
    if not groups:
        raise ValueError(f"--multi-query: dataset '{type(dataset).__name__}' provides no multi-query groups "
                         "(Market-1501 needs its gt_bbox folder)")
    from ..data.datasets.base import Sample

    paths: List[str] = []
    index: Dict[str, int] = {}
    rows: List[List[int]] = []
    for qi, group in enumerate(groups):
        group = list(group) or [dataset.query[qi].path]
        row = []
        for p in group:
            if p not in index:
                index[p] = len(paths)
                paths.append(p)
            row.append(index[p])
        rows.append(row)
    return [Sample(path=p, pid=0, camid=0, extras={}) for p in paths], rows


def write_verification(query: FeatureSet, gallery: FeatureSet, out_dir: Path, far: float, metric: str = "euclidean",
                       has_cameras: bool = True,
                       query_features: Optional[torch.Tensor] = None) -> "VerificationReport":
    """verification.json, verification.png (distance histograms + ROC) and TensorBoard entries in `out_dir`.

    Pairs are (query, gallery) pairs as the ranking protocol counts them; the threshold is for FAR `far`.
    """
    from ..evaluation.verification import (DEFAULT_FARS, DISTANCE_NAMES, pair_distances, query_positions,
                                           verification_report)
    from ..visualize import plot_verification

    if not 0 < far < 1:
        raise ValueError(f"--verification: the FAR must be between 0 and 1 (e.g. 1e-3), got {far}")
    qf = query.features if query_features is None else query_features
    pos, neg, total = pair_distances(qf, gallery.features, query.pids, gallery.pids,
                                     query.camids if has_cameras else None, gallery.camids if has_cameras else None,
                                     None if has_cameras else query_positions(query.paths, gallery.paths),
                                     metric=metric)
    if not len(pos) or not len(neg):
        raise ValueError(f"--verification: the split has {len(pos)} same-id and {len(neg)} different-id pairs; "
                         "both are needed")
    name = DISTANCE_NAMES.get(metric, metric)
    report = verification_report(pos, neg, fars=sorted(set(DEFAULT_FARS) | {far}, reverse=True), chosen_far=far,
                                 metric=name, num_negative_total=total)
    report.save_json(out_dir / "verification.json")
    png = plot_verification(pos, neg, report.roc["far"], report.roc["tar"], report.threshold,
                            out_dir / "verification.png", metric=f"{name} distance", chosen_far=far)
    from torch.utils.tensorboard import SummaryWriter

    writer = SummaryWriter(log_dir=str(out_dir / "tensorboard"))
    try:
        writer.add_histogram("verification/same_id_distance", pos, 0)
        writer.add_histogram("verification/different_id_distance", neg, 0)
        for key, entry in report.tar_at_far.items():
            writer.add_scalar(f"verification/TAR@FAR={key}", entry["tar"], 0)
            if np.isfinite(entry["threshold"]):
                writer.add_scalar(f"verification/threshold@FAR={key}", entry["threshold"], 0)
        import cv2

        writer.add_image("verification/histograms_roc", cv2.cvtColor(cv2.imread(str(png)), cv2.COLOR_BGR2RGB), 0,
                         dataformats="HWC")
    finally:
        writer.close()
    return report
