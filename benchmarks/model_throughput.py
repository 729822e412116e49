#!/usr/bin/env python
"""Parameters and inference throughput (img/s) of backbones: NIN-BN vs BN-Inception (DarkRank's student and
teacher; the paper reports a 2.96x speed-up on a GPU), with ResNet-50 and the small CPU net for reference.

    python benchmarks/model_throughput.py [--device cpu|cuda] [--batch 64] [--threads 2]
"""
import argparse
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from reid.models import build_model  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--iters", type=int, default=3)
    parser.add_argument("--models", nargs="+", default=["nin_bn", "bn_inception", "resnet50", "small"])
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    rates = {}
    print(f"{'backbone':<14} {'params (M)':>10} {'img/s':>8}   (batch {args.batch}, 256x128, {args.device}, eval)")
    for name in args.models:
        model = build_model({"backbone": name, "last_stride": 2, "embedding_dim": 128}).to(args.device).eval()
        x = torch.randn(args.batch, 3, 256, 128, device=args.device)
        with torch.no_grad():
            model(x)  # warm-up
            if args.device.startswith("cuda"):
                torch.cuda.synchronize()
            start = time.time()
            for _ in range(args.iters):
                model(x)
            if args.device.startswith("cuda"):
                torch.cuda.synchronize()
        rates[name] = args.batch * args.iters / (time.time() - start)
        params = sum(p.numel() for p in model.parameters()) / 1e6
        print(f"{name:<14} {params:>10.2f} {rates[name]:>8.1f}", flush=True)
    if "nin_bn" in rates and "bn_inception" in rates:
        print(f"NIN-BN / BN-Inception speed ratio: {rates['nin_bn'] / rates['bn_inception']:.2f}x (paper: 2.96x)")


if __name__ == "__main__":
    main()
