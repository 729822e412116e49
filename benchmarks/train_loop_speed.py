#!/usr/bin/env python
"""Whole training loop (data + step) per iteration: the earlier loader vs the tensor pipeline, and the step alone.

    python benchmarks/train_loop_speed.py --root /path/to/market \
        [--configs configs/cpu_quick/sn.yaml configs/cpu/market1501_sn.yaml] [--iters 100] [--rounds 2] \
        [--json benchmarks/results/train_loop_speed.json]

For each config, on the same Trainer (same model, batch, threads), in alternating rounds:
- old: the earlier code path: per-file JPEG decoding and the albumentations pipeline in `data.num_workers` worker
  processes started again every epoch (the loader rebuilt as the trainer used to build it), eager model, NCHW;
- new: the tensor pipeline (decoded-image cache, batched augmentation in the training process) with the settings
  of `--new` (default: channels_last, which the trainer now applies on the CPU too; torch.compile was measured
  too and did not win inside the trainer, see BENCHMARKS.md, so it is not an option);
- step: the new path's optimisation step alone (forward, losses, backward, optimiser) on one fixed batch already
  in memory.
Each figure is one whole epoch of `--iters` iterations (worker start-up included, as in training) divided by the
iterations; the median over the rounds is reported.
"""
from __future__ import annotations

import argparse
import json
import platform
import sys
import tempfile
import time
from datetime import date
from pathlib import Path
from typing import Dict, List

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from reid.config import load_config  # noqa: E402
from reid.data.loader import ImageDataset  # noqa: E402
from reid.data.train_loader import AlbumentationsTrainLoader, SeededDataset  # noqa: E402
from reid.data.transforms import build_transforms  # noqa: E402
from reid.engine.trainer import Trainer  # noqa: E402


def earlier_loader(trainer: Trainer) -> AlbumentationsTrainLoader:
    """The loader of earlier releases: same sampler and seeds, workers re-spawned every epoch."""
    data = trainer.cfg["data"]
    loader = AlbumentationsTrainLoader(trainer.train_set, trainer.cfg["transforms"], trainer.loader.batches,
                                       data["num_workers"], data["on_error"], trainer.cfg["seed"])
    dataset = ImageDataset(trainer.train_set, build_transforms(trainer.cfg["transforms"], train=True), data["on_error"])
    loader.loader = torch.utils.data.DataLoader(
        SeededDataset(dataset), batch_sampler=trainer.loader.batches, num_workers=data["num_workers"],
        persistent_workers=False, generator=torch.Generator().manual_seed(trainer.cfg["seed"]))
    return loader


def time_epoch(trainer: Trainer, epoch: int) -> float:
    start = time.perf_counter()
    trainer.train_epoch(epoch, 0)
    return time.perf_counter() - start


def time_steps(trainer: Trainer, batch: Dict, iters: int) -> float:
    trainer.train_step(batch, 0, 0)  # warm-up
    start = time.perf_counter()
    for _ in range(iters):
        trainer.train_step(batch, 0, 0)
    return (time.perf_counter() - start) / iters


def build_trainer(path: str, root: str, folder: str, iters: int, extra: List[str]) -> Trainer:
    cfg = load_config(path, [f"data.root={root}", f"output_dir={folder}", "train.device=cpu", "train.eval_every=0",
                             "train.projector_samples=0", f"train.iters_per_epoch={iters}", *extra])
    return Trainer(cfg, progress=False, overwrite=True)


def bench_config(path: str, root: str, iters: int, rounds: int, new_settings: List[str]) -> Dict:
    with tempfile.TemporaryDirectory() as tmp:
        # The earlier code path as a whole: per-file loader, eager model, contiguous (NCHW) tensors on the CPU.
        old = build_trainer(path, root, f"{tmp}/old", iters,
                            ["data.pipeline=albumentations", "train.channels_last=false"])
        old.loader = earlier_loader(old)
        new = build_trainer(path, root, f"{tmp}/new", iters, ["data.pipeline=tensor", *new_settings])
        new.loader.set_epoch(0)
        fixed = next(iter(new.loader))
        times: Dict[str, List[float]] = {"old": [], "new": [], "step": []}
        for r in range(rounds):
            times["old"].append(time_epoch(old, 2 * r) / iters)
            times["new"].append(time_epoch(new, 2 * r + 1) / iters)
            times["step"].append(time_steps(new, fixed, iters))
        old.close()
        new.close()
    cfg = new.cfg
    p, k = cfg["data"]["p"], cfg["data"]["k"]
    med = {name: float(np.median(v)) for name, v in times.items()}
    return {"config": path, "size": f"{cfg['transforms']['height']}x{cfg['transforms']['width']}",
            "batch": f"{p}x{k}", "backbone": cfg["model"]["backbone"], "iters": iters, "rounds": rounds,
            "workers_old": cfg["data"]["num_workers"], "new_settings": new_settings,
            "per_iter_s": med, "all_s": times,
            "speedup_new_vs_old": med["old"] / med["new"], "new_over_step": med["new"] / med["step"]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--root", required=True, help="data root holding Market-1501-v15.09.15")
    parser.add_argument("--configs", nargs="+", default=["configs/cpu_quick/sn.yaml", "configs/cpu/market1501_sn.yaml"])
    parser.add_argument("--iters", type=int, default=100, help="iterations per timed epoch")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--new", nargs="*", default=["train.channels_last=true"],
                        help="settings of the new path besides data.pipeline=tensor")
    parser.add_argument("--json", help="write the results here")
    args = parser.parse_args()
    results = [bench_config(c, args.root, args.iters, args.rounds, args.new) for c in args.configs]
    print("| recipe | batch | old s/iter | new s/iter | new vs old | step-only s/iter | new / step |")
    print("| --- | --- | ---: | ---: | ---: | ---: | ---: |")
    for r in results:
        t = r["per_iter_s"]
        print(f"| {r['config']} ({r['size']}) | {r['batch']} | {t['old']:.3f} | {t['new']:.3f} | "
              f"{r['speedup_new_vs_old']:.2f}x | {t['step']:.3f} | {r['new_over_step']:.3f} |")
    print("new: data.pipeline=tensor " + " ".join(args.new))
    if args.json:
        meta = {"date": str(date.today()), "machine": f"{platform.machine()}, {torch.get_num_threads()} threads",
                "torch": torch.__version__, "command": " ".join(sys.argv)}
        Path(args.json).write_text(json.dumps({"meta": meta, "results": results}, indent=1))


if __name__ == "__main__":
    main()
