"""Set-up of the density-adaptivity regularizer (Li et al., TMM 2019) before the first epoch.

Two per-class measurements over all training images (test-time transform, model in eval mode):
- D0, the original class densities (eq. 8's D0), on the pre-embedding features named by `loss.density_features`
  (default `pooled`): `loss.density_d0: start` measures the network at start (the paper's D0 comes from its
  pretrained network, i.e. the network before metric training), or a path to a checkpoint whose model is measured.
- the initial target densities alpha_c: `loss.density_init: constant` keeps the loss's `alpha_init` (0.5, the
  paper); `start` measures D_c of the embedding the density term reads (its `input`, default `normalized`) on the
  network at start, so (D_c - alpha_c)^2 starts at 0 instead of pulling every class towards 0.5; a path measures
  a checkpoint's model instead.
Each distinct model is run once over the training images. A missing or unreadable checkpoint is one error that
names the config key and the file.
"""
from __future__ import annotations

import copy
from pathlib import Path
from typing import Any, Dict, List, Mapping, Tuple

import torch

from ..utils.progress import progress
from ..checkpoint import CheckpointError, load_checkpoint, load_model_state

START, CONSTANT = "start", "constant"


def _density_terms(losses: Any) -> List[Tuple[torch.nn.Module, str]]:
    """(density module, the model output it reads) for every term with `set_d0`."""
    found: List[Tuple[torch.nn.Module, str]] = []
    specs = getattr(losses, "specs", None)
    if specs is not None and hasattr(losses, "losses"):
        for spec in specs:
            module = losses.losses[spec["display"]]
            if hasattr(module, "set_d0"):
                found.append((module, spec["input"]))
        return found
    return [(m, getattr(m, "default_input", "normalized")) for m in losses.modules() if hasattr(m, "set_d0")]


def _checkpoint_model(trainer: Any, key: str, path: str) -> torch.nn.Module:
    """A copy of the trainer's model with the weights of the checkpoint named by config key `key`."""
    file = Path(path)
    if not file.is_file():
        raise FileNotFoundError(f"config key '{key}': checkpoint file {path} not found (give 'start' or the path "
                                "of a checkpoint.pth / best.pth of a run with the same model)")
    model = copy.deepcopy(trainer.model)
    try:
        state = load_checkpoint(file, map_location=trainer.device)
        load_model_state(model, state["model"], str(file))
    except CheckpointError as err:
        raise CheckpointError(f"config key '{key}': cannot use checkpoint file {path}: {err}") from None
    return model


def _measure(trainer: Any, model: torch.nn.Module, keys: List[str]) -> Dict[str, torch.Tensor]:
    """Per-class densities (num_classes,) of each model output in `keys` over all training images."""
    from ..losses.density import compute_class_densities

    if hasattr(trainer, "test_loader"):  # the trainer's own test pipeline (decoded-image cache for the train split)
        loader = trainer.test_loader(trainer.train_set, "train")
    else:
        loader = trainer.build_test_loader(trainer.train_set, trainer.cfg["transforms"],
                                           batch_size=trainer.cfg["data"]["test_batch_size"], num_workers=0)
    was_training = model.training
    model.eval()
    feats: Dict[str, List[torch.Tensor]] = {k: [] for k in keys}
    labels = []
    # fork_rng: the measurement must not shift the training RNG stream (exact resume)
    with torch.no_grad(), torch.random.fork_rng(devices=[]):
        for batch in progress(loader, "densities", enabled=bool(trainer.progress)):
            out = model(batch["img"].to(trainer.device), return_dict=True)
            for k in keys:
                if k not in out:
                    raise KeyError(f"density adaptivity: the model has no output '{k}' to measure (available: "
                                   f"{', '.join(out)})")
                feats[k].append(out[k].float().cpu())
            labels.append(batch["pid"])
    model.train(was_training)
    y = torch.cat(labels)
    return {k: compute_class_densities(torch.cat(v), y, trainer.num_classes) for k, v in feats.items()}


def setup_density(trainer: Any) -> bool:
    """Measure D0 (and, when asked, the initial alpha_c) and set them on every density term; False (nothing done)
    without a density term. Whether it has been done already is `hooks.DensityHook`'s to know: this function
    measures each time it is called."""
    terms = _density_terms(trainer.losses)
    if not terms:
        return False
    loss_cfg: Mapping[str, Any] = trainer.cfg["loss"]
    d0_source = loss_cfg.get("density_d0", START) or START
    init_source = loss_cfg.get("density_init", CONSTANT) or CONSTANT
    d0_key = loss_cfg["density_features"]
    # which outputs to measure on which model: {source: set of output keys}
    wanted: Dict[str, set] = {d0_source: {d0_key}}
    if init_source != CONSTANT:
        wanted.setdefault(init_source, set()).update(key for _, key in terms)
    measured: Dict[Tuple[str, str], torch.Tensor] = {}
    for source, keys in wanted.items():
        if source == START:
            model = trainer.model
        else:
            config_key = "loss.density_d0" if source == d0_source else "loss.density_init"
            model = _checkpoint_model(trainer, config_key, source)
        for key, value in _measure(trainer, model, sorted(keys)).items():
            measured[(source, key)] = value
    for module, key in terms:
        module.set_d0(measured[(d0_source, d0_key)].to(trainer.device))
        if init_source != CONSTANT:
            module.set_alpha(measured[(init_source, key)].to(trainer.device))
    where = lambda s: "the network at start" if s == START else s  # noqa: E731
    alpha = "alpha_init" if init_source == CONSTANT else f"class densities of {where(init_source)}"
    trainer.monitor.log(f"density adaptivity: D0 measured on {len(trainer.train_set)} images ({d0_key} features of "
                        f"{where(d0_source)}); alpha initialised from {alpha}")
    return True
