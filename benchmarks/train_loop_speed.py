#!/usr/bin/env python
"""Whole training loop (data + step) per iteration: the earlier loader vs the tensor pipeline, and the step alone.

    python benchmarks/train_loop_speed.py --root /path/to/market \
        [--configs configs/cpu_quick/sn.yaml configs/cpu/market1501_sn.yaml] [--iters 100] [--rounds 2] \
        [--json benchmarks/results/train_loop_speed.json]

For each config, on the same Trainer (same model, batch, threads), in alternating rounds:
- old: the earlier releases' loader, rebuilt as the trainer used to build it: per-file JPEG decoding and the
  albumentations pipeline in `data.num_workers` worker processes started again every epoch;
- new: the default tensor pipeline (decoded-image cache, batched augmentation in the training process);
- step: the optimisation step alone (forward, losses, backward, optimiser) on one fixed batch already in memory.
Each figure is one whole epoch of `--iters` iterations (worker start-up included, as in training) divided by the
iterations; the median over the rounds is reported. `--step-variants` also times the step with channels_last
and with torch.compile on the CPU (the issue asks to keep only what wins).
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
    trainer._train_epoch(epoch, 0)
    return time.perf_counter() - start


def time_steps(trainer: Trainer, batch: Dict, iters: int) -> float:
    trainer._step(batch, 0, 0)  # warm-up
    start = time.perf_counter()
    for _ in range(iters):
        trainer._step(batch, 0, 0)
    return (time.perf_counter() - start) / iters


def bench_config(path: str, root: str, iters: int, rounds: int, variants: bool) -> Dict:
    with tempfile.TemporaryDirectory() as tmp:
        cfg = load_config(path, [f"data.root={root}", f"output_dir={tmp}/run", "train.device=cpu",
                                 "train.eval_every=0", "train.projector_samples=0", f"train.iters_per_epoch={iters}",
                                 "data.pipeline=tensor"])
        trainer = Trainer(cfg, progress=False, overwrite=True)
        new_loader, old_loader = trainer.loader, earlier_loader(trainer)
        new_loader.set_epoch(0)
        fixed = next(iter(new_loader))
        times: Dict[str, List[float]] = {"old": [], "new": [], "step": []}
        for r in range(rounds):
            trainer.loader = old_loader
            times["old"].append(time_epoch(trainer, 2 * r) / iters)
            trainer.loader = new_loader
            times["new"].append(time_epoch(trainer, 2 * r + 1) / iters)
            times["step"].append(time_steps(trainer, fixed, iters))
        extra = {}
        if variants:
            model = trainer.model
            trainer.model = trainer.net = model.to(memory_format=torch.channels_last)
            cl = dict(fixed, img=fixed["img"].contiguous(memory_format=torch.channels_last))
            extra["step_channels_last"] = time_steps(trainer, cl, iters)
            trainer.model = trainer.net = model.to(memory_format=torch.contiguous_format)
            start = time.perf_counter()
            trainer.net = torch.compile(model)
            trainer._step(fixed, 0, 0)
            extra["compile_seconds"] = time.perf_counter() - start
            extra["step_compiled"] = time_steps(trainer, fixed, iters)
        trainer.close()
    p, k = cfg["data"]["p"], cfg["data"]["k"]
    med = {name: float(np.median(v)) for name, v in times.items()}
    return {"config": path, "size": f"{cfg['transforms']['height']}x{cfg['transforms']['width']}",
            "batch": f"{p}x{k}", "backbone": cfg["model"]["backbone"], "iters": iters, "rounds": rounds,
            "workers_old": cfg["data"]["num_workers"], "per_iter_s": med, "all_s": times, **extra,
            "speedup_new_vs_old": med["old"] / med["new"], "new_over_step": med["new"] / med["step"]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--root", required=True, help="data root holding Market-1501-v15.09.15")
    parser.add_argument("--configs", nargs="+", default=["configs/cpu_quick/sn.yaml", "configs/cpu/market1501_sn.yaml"])
    parser.add_argument("--iters", type=int, default=100, help="iterations per timed epoch")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--step-variants", action="store_true", help="also time channels_last and torch.compile")
    parser.add_argument("--json", help="write the results here")
    args = parser.parse_args()
    results = [bench_config(c, args.root, args.iters, args.rounds, args.step_variants) for c in args.configs]
    print("| recipe | batch | old s/iter | new s/iter | new vs old | step-only s/iter | new / step |")
    print("| --- | --- | ---: | ---: | ---: | ---: | ---: |")
    for r in results:
        t = r["per_iter_s"]
        print(f"| {r['config']} ({r['size']}) | {r['batch']} | {t['old']:.3f} | {t['new']:.3f} | "
              f"{r['speedup_new_vs_old']:.2f}x | {t['step']:.3f} | {r['new_over_step']:.3f} |")
        if "step_compiled" in r:
            print(f"  step variants: channels_last {r['step_channels_last']:.3f} s, torch.compile "
                  f"{r['step_compiled']:.3f} s (compile {r['compile_seconds']:.0f} s)")
    if args.json:
        meta = {"date": str(date.today()), "machine": f"{platform.machine()}, {torch.get_num_threads()} threads",
                "torch": torch.__version__, "command": " ".join(sys.argv)}
        Path(args.json).write_text(json.dumps({"meta": meta, "results": results}, indent=1))


if __name__ == "__main__":
    main()
