"""The config schema: every key with its default, the allowed values and ranges, what a resume may change.

One source of truth: `reid.config` validates against it, the CLI's `--print-config` shows it resolved, and
components that own a free-form section (transforms, loss terms, dataset options) validate that section
themselves. The allowed values of a pluggable key are the names of its registry (REGISTERED), read when a value
is checked, so registering a pooling, classifier, optimiser or schedule makes the config accept it; fixed option
lists are in CHOICES. Both tables sit in reid.registry, so this module names no layer above it.
"""
from __future__ import annotations

from typing import Any, Dict, Optional, Tuple

from ..registry import CHOICES as _CHOICES
from ..registry import config_registry


class ConfigError(ValueError):
    """A config file, key or value that cannot be used."""


# Sections whose content is free-form (passed as keyword arguments to a component that validates it itself).
OPEN_SECTIONS = {"data.kwargs", "transforms", "model.horde", "loss.terms", "test.dataset_kwargs"}

DEFAULTS: Dict[str, Any] = {
    "seed": 0,
    "output_dir": "runs/default",
    "data": {
        "dataset": "synthetic",
        "root": "datasets",
        "kwargs": {},  # dataset-specific: split_id, protocol, labeled, distractors, attributes, ...
        "p": 16,  # identities per batch
        "k": 4,  # images per identity
        "sampler": "pk",  # pk (P ids x K images) | darkrank (P*K//4 cross-camera pairs + singles; reid.data.sampler)
        "num_workers": 2,  # worker processes of the albumentations pipeline (the tensor pipeline needs none)
        "pipeline": "tensor",  # tensor (decoded-image cache + batched augmentation), albumentations (per file)
        "cache_dir": None,  # decoded-image cache: None = <data.root>/.reid_cache, or <output_dir>/cache when the
        # data root is read-only; "off" = decode into memory, no file
        "cache_max_gb": 8.0,  # the cache folder's size cap (LRU eviction); a split whose decoded images exceed
        # it falls back to the albumentations pipeline
        "cache_hash": "stat",  # what keys a cached image: stat (path, size, mtime) | content (its bytes, read once)
        "test_batch_size": 128,
        "on_error": "raise",  # unreadable images
    },
    "transforms": {},  # keys of reid.data.transforms.build_transforms (height, width, pad, hflip, ...)
    "model": {
        "backbone": "resnet50",
        "pretrained": "none",  # none | imagenet | path to a state dict
        "last_stride": 1,
        "last_stride_mode": None,  # None = the backbone's default | undilated | dilated (reid.models.backbones.last_stride)
        "head_conv": None,  # mobile backbones: keep the ImageNet 1x1 head conv (None = their default, true)
        "pooling": "avg",  # a name of reid.models.POOLINGS
        "embedding_dim": None,
        "bn_neck": False,
        "classifier": None,  # None | a name of reid.models.CLASSIFIERS
        "margin": 3,
        "horde": None,
    },
    "loss": {
        # Each term: {name, weight, input?, teacher_input?, **params}; see reid.losses.CombinedLoss.
        "terms": [{"name": "triplet", "weight": 1.0}],
        "density_features": "pooled",  # which output D0 is measured on (density adaptivity)
        "density_d0": "start",  # D0 measured on: start (the network before training) | path to a checkpoint
        "density_init": "constant",  # alpha_c init: constant (alpha_init, 0.5) | start | checkpoint path (measured)
    },
    "optim": {
        "name": "adam",  # a name of reid.engine.optim.OPTIMIZERS
        "lr": 3.5e-4,
        "weight_decay": 5e-4,
        "momentum": 0.9,
        "nesterov": False,
        "loss_lr": None,  # lr of loss parameters (e.g. density alpha_c); None = same as lr
        "loss_weight_decay": 0.0,
        "clip_grad": None,  # max gradient norm
    },
    "schedule": {
        "name": "multistep",  # a name of reid.engine.optim.SCHEDULES
        "milestones": [40, 70],
        "gamma": 0.1,
        "warmup_epochs": 0,
        "warmup_factor": 0.01,
        "decay_start": 75,  # constant_exp: constant until this epoch ...
        "decay_end": 800,  # ... then exponential decay reaching final_factor here
        "final_factor": 0.001,
        "min_lr_factor": 0.0,  # warmup_cosine floor
        # iteration: the lr follows the schedule every step (a warm-up epoch ramps up over its iterations);
        # epoch: once per epoch (the published from-scratch configs were measured so and keep it)
        "step": "iteration",
    },
    "train": {
        "epochs": 60,
        "iters_per_epoch": None,  # None = the sampler's natural epoch
        "amp": True,  # only takes effect on CUDA
        "channels_last": True,  # NHWC convolutions: faster on CUDA and with oneDNN on the CPU (BENCHMARKS.md)
        "eval_every": 10,
        "flip_test": False,
        "log_every": 20,
        "checkpoint_every": 1,
        "device": "auto",  # auto | cpu | cuda | cuda:N
        "threads": None,  # torch CPU threads; None = torch default
        # CPU: treat denormal floats as 0 (their arithmetic runs in microcode). Off keeps old runs exact; the
        # pretrained recipes set it, though no speed-up was shown on an idle machine (BENCHMARKS.md "Pretrained regime")
        "flush_denormal": False,
        "projector_samples": 200,  # TensorBoard embedding projector sample size (0 = off)
        "ranklist_queries": 4,  # queries drawn in the TensorBoard rank-list image (0 = off)
    },
    "distill": {
        "teacher_config": None,
        "teacher_checkpoint": None,
    },
    "test": {
        "metric": "euclidean",
        "ap": "mean",
        "empty": "skip",
        "rerank": False,
        "k1": 20,
        "k2": 6,
        "lambda_value": 0.3,
        "multi_query": None,
        "protocol": "market",
        "trials": 10,
        "high_order": False,
        "max_rank": 50,
        "dataset_kwargs": {},
    },
}

# Fixed option lists (what the code that reads the key implements): reid.registry.CHOICES, where the data and
# evaluation code read them too.
CHOICES = _CHOICES

# Pluggable keys: their allowed values are the names of the registry that declares the key
# (`Registry(kind, config_key=key)` in reid.models.heads and reid.engine.optim), null too where the default is null.
REGISTERED: Tuple[str, ...] = ("model.pooling", "model.classifier", "optim.name", "schedule.name")


def registry(key: str) -> Any:
    """The registry behind a pluggable config key (REGISTERED), None while its owner is not imported."""
    return config_registry(key)


def choices(key: str) -> Optional[Tuple[Any, ...]]:
    """The allowed values of `key` (registered names in registration order, or CHOICES), None if unrestricted or if
    the registry's owner is not imported yet (its builder then refuses an unknown name with the same list)."""
    if key in REGISTERED:
        found = registry(key)
        if found is None:
            return None
        default: Any = DEFAULTS
        for part in key.split("."):
            default = default[part]
        return ((None,) if default is None else ()) + tuple(found.names(sort=False))
    return CHOICES.get(key)


# Numeric keys with a valid range (low, high; None = unbounded): a value outside is refused when the config is
# read, naming key and value, instead of failing deep inside the sampler or optimiser.
RANGES: Dict[str, Tuple[Optional[float], Optional[float]]] = {
    "data.p": (1, None),
    "data.k": (1, None),
    "data.num_workers": (0, None),
    "data.test_batch_size": (1, None),
    "data.cache_max_gb": (0, None),
    "train.iters_per_epoch": (1, None),  # 0 would train nothing and still write a checkpoint
    "optim.lr": (0, None),
    "optim.weight_decay": (0, None),
    "optim.loss_lr": (0, None),
    "optim.loss_weight_decay": (0, None),
}


# Keys that may change between a run and its resume without invalidating the saved state.
RESUME_SAFE_PREFIXES = (
    "output_dir",
    "train.epochs",
    "train.eval_every",
    "train.log_every",
    "train.checkpoint_every",
    "train.device",
    "train.threads",
    "train.projector_samples",
    "train.ranklist_queries",
    "train.flip_test",
    "data.num_workers",
    "data.cache_dir",
    "data.cache_max_gb",  # a change that switches the pipeline is refused by the trainer's resume
    "data.cache_hash",
    "data.test_batch_size",
    "data.root",
    "test.",
)
