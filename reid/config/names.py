"""Finding configs by name, and the config key names users bring from torchreid and fast-reid.

Configs ship inside the package (`reid/configs/` in a wheel, the checkout's `configs/` otherwise), so
`--config sn/market1501` works from any directory and from a non-editable install; a path to a file always wins.

Key aliases: a name whose meaning is identical here (`optim.base_lr`, `model.name`, `SOLVER.MAX_EPOCH`, ...) is
accepted and moved to its canonical key; a name whose meaning differs (`data.batch_size`: batches here are P
identities x K images) is an error that explains what to write instead. Without this table the nearest-spelling
suggestion would propose an unrelated key (`data.batch_size` -> `data.test_batch_size`).
"""
from __future__ import annotations

import copy
import difflib
import re
from pathlib import Path
from typing import Any, Dict, List, Mapping, Optional, Tuple

from .schema import DEFAULTS, OPEN_SECTIONS, ConfigError, choices

_BATCH = ("the training batch is data.p identities x data.k images each (batch size = p x k, e.g. data.p=16 "
          "data.k=4 for 64 images); the evaluation batch is data.test_batch_size")
_DATASET = "one dataset trains and evaluates: data.dataset (a name such as market1501; see reid.data.DATASETS)"
# {key} in a note stands for that key's allowed values (reid.config.schema.choices), filled in when it is shown
_SCHEDULE = "schedule.name: {schedule.name} (milestones in schedule.milestones)"
_SIZE = "transforms.height and transforms.width"
_BACKBONE = ("fast-reid's MODEL.BACKBONE.NAME names a builder (build_resnet_backbone) and MODEL.BACKBONE.DEPTH its "
             "depth; here one name says both: model.backbone=resnet50 (resnet18/34/50/101, googlenet, inception_v3, "
             "bn_inception, nin_bn, small, timm/<name>)")


def _named(project: str, targets: Mapping[str, str]) -> Dict[str, Tuple[Optional[str], str]]:
    """Another project's key -> our key, explained as "<project>'s <key>" (as that project spells it)."""
    return {key.lower(): (target, f"{project}'s {key}") for key, target in targets.items()}


def _alias(target: Optional[str], note: str, *keys: str) -> Dict[str, Tuple[Optional[str], str]]:
    """`keys` mean `target` (what they are: `note`); with no target, each is an error explaining `note` instead."""
    return {key: (target, note) for key in keys}


# lower-case alias -> (canonical key, or None when only an explanation fits; what it is)
ALIASES: Dict[str, Tuple[Optional[str], str]] = {
    **_named("torchreid", {
        "train.lr": "optim.lr", "train.optim": "optim.name", "train.weight_decay": "optim.weight_decay",
        "sgd.momentum": "optim.momentum", "train.max_epoch": "train.epochs", "train.gamma": "schedule.gamma",
        "train.print_freq": "train.log_every", "test.eval_freq": "train.eval_every",
        "test.batch_size": "data.test_batch_size", "data.workers": "data.num_workers", "model.name": "model.backbone",
        "test.dist_metric": "test.metric"}),
    **_named("fast-reid", {
        "SOLVER.BASE_LR": "optim.lr", "SOLVER.OPTIMIZER_NAME": "optim.name",
        "SOLVER.WEIGHT_DECAY": "optim.weight_decay", "SOLVER.MOMENTUM": "optim.momentum",
        "SOLVER.MAX_EPOCH": "train.epochs", "SOLVER.GAMMA": "schedule.gamma",
        "TEST.EVAL_PERIOD": "train.eval_every", "TEST.IMS_PER_BATCH": "data.test_batch_size",
        "DATALOADER.NUM_WORKERS": "data.num_workers"}),
    **_alias("optim.lr", "the base learning rate", "optim.base_lr", "train.base_lr"),
    **_alias("data.k", "torchreid's num_instances (images per identity)", "sampler.num_instances",
             "data.num_instances"),
    **_alias("data.k", "fast-reid's DATALOADER.NUM_INSTANCE (images per identity)", "dataloader.num_instance"),
    **_alias("schedule.milestones", "torchreid's train.stepsize (epochs)", "train.stepsize"),
    **_alias("seed", "the random seed", "train.seed"),
    **_alias("transforms.height", "the input height", "data.height"),
    **_alias("transforms.width", "the input width", "data.width"),
    **_alias("model.backbone", "the backbone architecture", "model.arch"),
    **_alias(None, _SCHEDULE, "train.lr_scheduler", "solver.sched"),
    **_alias(None, "schedule.milestones, given in epochs", "solver.steps"),
    **_alias(None, _BATCH, "data.batch_size", "train.batch_size", "solver.ims_per_batch", "dataloader.batch_size"),
    **_alias(None, _DATASET, "data.sources", "data.targets", "datasets.names", "datasets.tests"),
    **_alias(None, "images only: data.dataset names the dataset", "data.type"),
    **_alias(None, f"{_SIZE} (test images use the same size)", "input.size_train"),
    **_alias(None, f"{_SIZE} (train and test share one size)", "input.size_test"),
    **_alias(None, "losses are a list of terms: loss.terms: [{name: softmax}, {name: triplet, weight: 1.0}]",
             "loss.name"),
    # more names the two projects' configs use (issue 29): the same meaning moves, a different one is explained
    **_named("torchreid", {"data.save_dir": "output_dir"}),
    **_named("fast-reid", {
        "MODEL.BACKBONE.LAST_STRIDE": "model.last_stride", "MODEL.HEADS.EMBEDDING_DIM": "model.embedding_dim",
        "SOLVER.CHECKPOINT_PERIOD": "train.checkpoint_every", "SOLVER.AMP.ENABLED": "train.amp",
        "OUTPUT_DIR": "output_dir"}),
    **_alias(None, _BACKBONE, "model.backbone.name", "model.backbone.depth"),
    **_alias(None, "model.pretrained: imagenet (torchvision's or timm's weights), none, or a state-dict file",
             "model.backbone.pretrain", "model.backbone.pretrain_path"),
    **_alias(None, "set by the dataset: the classifier has one output per training identity",
             "model.heads.num_classes"),
    **_alias(None, "torchreid's train.fixbase_epoch / train.open_layers train only the new layers for the first "
             "epochs; here every layer trains from the first step (schedule.warmup_epochs ramps the learning rate "
             "up instead)", "train.fixbase_epoch", "train.open_layers"),
    **_alias(None, "a run continues with --resume (from its checkpoint.pth), not from a start epoch",
             "train.start_epoch"),
    **_alias(None, "loss options sit in the term: loss.terms: [{name: softmax, label_smoothing: 0.1}]",
             "loss.softmax.label_smooth"),
    **_alias(None, "loss options sit in the term: loss.terms: [{name: triplet, margin: 0.3}]",
             "loss.triplet.margin", "loss.triplet.weight_t", "loss.triplet.weight_x"),
    **_alias(None, "rank lists: reid-test --visualize N (PNGs of N queries)", "test.visrank"),
    **_alias(None, "evaluation alone is its own command: reid-test --checkpoint runs/<run>/best.pth",
             "test.evaluate", "test.eval_only"),
}


def _no_equivalent(key: str, source: str, note: str) -> Exception:
    """The error for an alias that has no canonical key: the note, with {config.key} replaced by its choices."""
    def values(match: re.Match) -> str:
        allowed = choices(match.group(1))
        return match.group(0) if allowed is None else " | ".join(str(c) for c in allowed)

    note = re.sub(r"\{([a-z_.]+)\}", values, note)
    return ConfigError(f"config key '{key}' in {source} does not exist here: {note}")


def packaged_configs_dir() -> Optional[Path]:
    """The folder of shipped configs: `reid/configs` in an installed wheel, else the checkout's `configs/`."""
    here = Path(__file__).resolve().parents[1]  # the reid package folder
    for folder in (here / "configs", here.parent / "configs"):
        if folder.is_dir():
            return folder
    return None


def config_names() -> List[str]:
    """Names accepted by `--config NAME`, e.g. 'sn/market1501' (files under _base_ are building blocks)."""
    folder = packaged_configs_dir()
    if folder is None:
        return []
    return sorted(p.relative_to(folder).with_suffix("").as_posix() for p in folder.glob("**/*.yaml")
                  if "_base_" not in p.relative_to(folder).parts)


def find_config(name: Any) -> Path:
    """A config path from a file path or a packaged name ('sn/market1501', 'configs/sn/market1501.yaml')."""
    path = Path(str(name)).expanduser()
    if path.is_file():
        return path
    folder = packaged_configs_dir()
    if folder is not None and not path.is_absolute():
        parts = path.parts[1:] if path.parts[:1] == ("configs",) else path.parts
        if parts:
            relative = Path(*parts)
            for candidate in (relative, relative.with_name(relative.name + ".yaml")):
                if (folder / candidate).is_file():
                    return folder / candidate
    names = config_names()
    close = difflib.get_close_matches(str(name).removeprefix("configs/").removesuffix(".yaml"), names, n=1,
                                      cutoff=0.5)
    hint = f"; did you mean '{close[0]}'?" if close else ""
    where = f" (packaged configs are in {folder})" if folder is not None else ""
    raise ConfigError(f"config file not found: {name}: neither a file nor a packaged config name{hint}{where}")


def _in_schema(key: str, defaults: Mapping[str, Any], open_sections: Any) -> bool:
    node: Any = defaults
    parts = key.split(".")
    for depth, part in enumerate(parts):
        if not isinstance(node, dict) or part not in node:
            return False
        node = node[part]
        if ".".join(parts[:depth + 1]) in open_sections:
            return True
    return True


def canonical_key(key: str, source: str) -> str:
    """An override's key after aliasing (`optim.base_lr` -> `optim.lr`); explanation-only aliases raise."""
    if _in_schema(key, DEFAULTS, OPEN_SECTIONS) or key.lower() not in ALIASES:
        return key
    target, note = ALIASES[key.lower()]
    if target is None:
        raise _no_equivalent(key, source, note)
    return target


def apply_aliases(tree: Mapping[str, Any], source: str) -> Dict[str, Any]:
    """Move aliased keys of a raw YAML mapping to their canonical place; explain the ones that have none.

    Unknown keys without an alias are left in place for the schema check to report."""
    out = copy.deepcopy(dict(tree))
    moves: List[Tuple[str, str, Any]] = []

    def walk(node: Dict[str, Any], schema: Any, prefix: str) -> None:
        for name in list(node):
            key, value = f"{prefix}{name}", node[name]
            if isinstance(schema, dict) and name in schema:
                if key not in OPEN_SECTIONS and isinstance(value, dict) and isinstance(schema[name], dict):
                    walk(value, schema[name], key + ".")
                continue
            alias = ALIASES.get(key.lower())
            if alias is not None:
                target, note = alias
                if target is None:
                    raise _no_equivalent(key, source, note)
                del node[name]
                moves.append((key, target, value))
            elif isinstance(value, dict):  # a foreign section such as fast-reid's SOLVER: look inside
                walk(value, None, key + ".")
                if not value:
                    del node[name]

    walk(out, DEFAULTS, "")
    for key, target, value in moves:
        node = out
        parts = target.split(".")
        for part in parts[:-1]:
            node = node.setdefault(part, {})
            if not isinstance(node, dict):
                raise ConfigError(f"config key '{key}' in {source}: '{target}' cannot be set ({part} is not a section)")
        if parts[-1] in node:
            raise ConfigError(f"config key '{key}' in {source} means '{target}', which is also set there; keep one")
        node[parts[-1]] = value
    return out
