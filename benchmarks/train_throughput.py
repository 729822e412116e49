#!/usr/bin/env python
"""Training throughput (images/s) of a config's model + losses on random P x K batches (no data loading).

    python benchmarks/train_throughput.py --config configs/synthetic_quick.yaml --iters 20
    python benchmarks/train_throughput.py --config configs/sn/market1501.yaml --device cuda --amp \
        model.pretrained=none --iters 50          # the GPU figure of BENCHMARKS.md

Measures the optimisation step only (forward, losses, backward, optimiser), so data loading is not the
bottleneck by construction; the loader's own throughput is benchmarks/loader_throughput.py.
"""
import argparse
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from reid.config import load_config  # noqa: E402
from reid.builders import build_losses_from_config, build_model_from_config  # noqa: E402
from reid.engine.optim import build_optimizer  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--config", required=True)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--amp", action="store_true", help="bf16/fp16 autocast (CUDA)")
    parser.add_argument("--channels-last", action="store_true")
    parser.add_argument("--iters", type=int, default=20)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--num-classes", type=int, default=751)
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("overrides", nargs="*")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)

    cfg = load_config(args.config, args.overrides)
    device = torch.device(args.device)
    model = build_model_from_config(cfg, args.num_classes).to(device).train()
    losses = build_losses_from_config(cfg, args.num_classes, model).to(device)
    if any(hasattr(m, "set_d0") for m in losses.modules()):
        for m in losses.modules():
            if hasattr(m, "set_d0"):
                m.set_d0(torch.ones(args.num_classes, device=device))
    optimizer = build_optimizer(model, cfg["optim"], losses.loss_parameters())
    p, k = cfg["data"]["p"], cfg["data"]["k"]
    h, w = (cfg["transforms"] or {}).get("height", 256), (cfg["transforms"] or {}).get("width", 128)
    images = torch.randn(p * k, 3, h, w, device=device)
    labels = torch.arange(p, device=device).repeat_interleave(k) % args.num_classes
    if args.channels_last:
        model = model.to(memory_format=torch.channels_last)
        images = images.contiguous(memory_format=torch.channels_last)
    scaler = torch.amp.GradScaler(device.type, enabled=args.amp and device.type == "cuda")

    def step() -> None:
        with torch.autocast(device_type=device.type, dtype=torch.bfloat16 if device.type == "cpu" else torch.float16,
                            enabled=args.amp):
            out = model(images, labels)
            total, _ = losses(out, labels, None)
        optimizer.zero_grad(set_to_none=True)
        scaler.scale(total).backward()
        scaler.step(optimizer)
        scaler.update()

    for _ in range(args.warmup):
        step()
    if device.type == "cuda":
        torch.cuda.synchronize()
    start = time.perf_counter()
    for _ in range(args.iters):
        step()
    if device.type == "cuda":
        torch.cuda.synchronize()
    elapsed = time.perf_counter() - start
    n = args.iters * p * k
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else f"CPU, {torch.get_num_threads()} threads"
    print(f"{cfg['model']['backbone']} {h}x{w} batch {p}x{k} amp={args.amp} on {name}: "
          f"{n / elapsed:.1f} img/s ({elapsed / args.iters * 1000:.1f} ms/iter)")


if __name__ == "__main__":
    main()
