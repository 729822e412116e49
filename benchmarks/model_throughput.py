#!/usr/bin/env python
"""Parameters and inference throughput (img/s) of re-ID models by backbone: NIN-BN vs BN-Inception (DarkRank's
student and teacher; the paper reports NIN-BN 2.96x faster on a GPU, 526 vs 178 img/s), with ResNet-50 and the small
CPU net for reference. Each model is backbone -> GAP -> FC 128 -> L2 norm (the DarkRank head), eval mode, no grad.

    python benchmarks/model_throughput.py [--device cpu|cuda] [--batch 64] [--threads 2] [--warmup 2] [--iters 3]
"""
from __future__ import annotations

import argparse
import platform
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from reid.models import build_model  # noqa: E402


def measure(name: str, args: argparse.Namespace) -> tuple:
    model = build_model({"backbone": name, "last_stride": 2, "embedding_dim": 128}).to(args.device).eval()
    params = sum(p.numel() for p in model.parameters()) / 1e6
    x = torch.randn(args.batch, 3, args.height, args.width, device=args.device)
    cuda = args.device.startswith("cuda")
    with torch.inference_mode():
        for _ in range(args.warmup):
            model(x)
        if cuda:
            torch.cuda.synchronize()
        times = []
        for _ in range(args.iters):
            start = time.perf_counter()
            model(x)
            if cuda:
                torch.cuda.synchronize()
            times.append(time.perf_counter() - start)
    best, mean = min(times), sum(times) / len(times)
    return params, args.batch / mean, args.batch / best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--height", type=int, default=256)
    parser.add_argument("--width", type=int, default=128)
    parser.add_argument("--threads", type=int, default=2, help="torch CPU threads")
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--iters", type=int, default=3)
    parser.add_argument("--models", nargs="+", default=["nin_bn", "bn_inception", "resnet50", "small"])
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.backends.cudnn.benchmark = True
    device = torch.cuda.get_device_name() if args.device.startswith("cuda") else f"{platform.processor() or 'cpu'}"
    print(f"torch {torch.__version__}, device {args.device} ({device}), {args.threads} threads, batch {args.batch}, "
          f"{args.height}x{args.width}, {args.warmup} warm-up + {args.iters} timed batches")
    print(f"| backbone | params (M) | img/s (mean) | img/s (best) |\n|---|---:|---:|---:|")
    rates = {}
    for name in args.models:
        params, mean, best = measure(name, args)
        rates[name] = mean
        print(f"| {name} | {params:.2f} | {mean:.1f} | {best:.1f} |", flush=True)
    if "nin_bn" in rates and "bn_inception" in rates:
        print(f"NIN-BN / BN-Inception speed ratio: {rates['nin_bn'] / rates['bn_inception']:.2f}x (paper: 2.96x)")


if __name__ == "__main__":
    main()
