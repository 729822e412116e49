"""Training-step time of a recipe's model with the last stride at 1, undilated vs dilated (issue: a last stride
that costs nothing).

One step = forward, the recipe's losses, backward and the optimiser step on a random batch of P x K images at the
recipe's input size, channels-last as the trainer runs it (the data path is not timed: it is the same for both).
Prints the per-step seconds (the first step, oneDNN's set-up, is left out of the median) and appends a JSON line.

    python benchmarks/last_stride_step.py --config configs/pretrained/lite0_128x64.yaml --mode undilated --steps 5
    python benchmarks/last_stride_step.py --config configs/pretrained/lite0_128x64.yaml --mode dilated --steps 3
    python benchmarks/last_stride_step.py --config configs/pretrained/lite0_128x64.yaml --mode undilated \
        --pretrained imagenet --flush-denormal off --json benchmarks/results/denormal_step.jsonl   # the denormal case
"""
from __future__ import annotations

import argparse
import json
import platform
import statistics
import time
from pathlib import Path

import torch

from reid.builders import build_losses_from_config, build_model_from_config
from reid.config import load_config
from reid.engine.optim import build_optimizer


def step_times(cfg: dict, steps: int, num_classes: int = 751, seed: int = 0) -> list:
    torch.manual_seed(seed)
    torch.set_flush_denormal(bool(cfg["train"]["flush_denormal"]))  # as the trainer runs the recipe
    model = build_model_from_config(cfg, num_classes).to(memory_format=torch.channels_last).train()
    losses = build_losses_from_config(cfg, num_classes, model)
    optimizer = build_optimizer(model, cfg["optim"], losses.loss_parameters())
    p, k = cfg["data"]["p"], cfg["data"]["k"]
    h, w = cfg["transforms"]["height"], cfg["transforms"]["width"]
    images = torch.randn(p * k, 3, h, w).contiguous(memory_format=torch.channels_last)
    labels = torch.arange(p).repeat_interleave(k)
    times = []
    for _ in range(steps):
        start = time.perf_counter()
        total, _ = losses(model(images, labels), labels)
        optimizer.zero_grad(set_to_none=True)
        total.backward()
        optimizer.step()
        times.append(time.perf_counter() - start)
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--config", required=True)
    parser.add_argument("--mode", choices=("undilated", "dilated"), required=True)
    parser.add_argument("--steps", type=int, default=5)
    parser.add_argument("--pretrained", default="none",
                        help="model.pretrained: none (random weights, the default) or imagenet (the denormal case)")
    parser.add_argument("--flush-denormal", choices=("config", "on", "off"), default="config",
                        help="train.flush_denormal: as the config says, or forced")
    parser.add_argument("--json", default="benchmarks/results/last_stride_step.jsonl")
    args = parser.parse_args()
    overrides = [f"model.last_stride_mode={args.mode}", f"model.pretrained={args.pretrained}"]
    if args.flush_denormal != "config":
        overrides.append(f"train.flush_denormal={args.flush_denormal == 'on'}")
    cfg = load_config(args.config, overrides)
    times = step_times(cfg, args.steps)
    median = statistics.median(times[1:] or times)
    row = {"config": args.config, "backbone": cfg["model"]["backbone"], "mode": args.mode,
           "pretrained": args.pretrained, "flush_denormal": bool(cfg["train"]["flush_denormal"]),
           "input": f"{cfg['transforms']['height']}x{cfg['transforms']['width']}",
           "batch": cfg["data"]["p"] * cfg["data"]["k"], "steps": args.steps,
           "step_s": [round(t, 4) for t in times], "median_s": round(median, 4),
           "torch": torch.__version__, "threads": torch.get_num_threads(), "cpu": platform.processor() or "",
           "date": time.strftime("%Y-%m-%d")}
    print(f"{row['backbone']} {row['input']} last stride 1 {args.mode}: {median:.3f} s per {row['batch']}-image step "
          f"(steps {row['step_s']})")
    Path(args.json).parent.mkdir(parents=True, exist_ok=True)
    with open(args.json, "a", encoding="utf-8") as f:
        f.write(json.dumps(row) + "\n")


if __name__ == "__main__":
    main()
