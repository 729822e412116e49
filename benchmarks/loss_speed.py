#!/usr/bin/env python
"""Forward + backward time of every registered loss on a 32 x 4 batch of 2048-d features (CPU).

    python benchmarks/loss_speed.py [--repeats 5] [--threads 2]
"""
import argparse
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from reid.losses import LOSSES, build_loss  # noqa: E402
from reid.models import large_margin_logits  # noqa: E402

SETUP = {  # (params, input kind)
    "softmax": ({}, "logits"), "large_margin_softmax": ({}, "logits"), "kd": ({}, "logits"),
    "triplet": ({}, "emb"), "triplet (batch_all)": ({"mining": "batch_all"}, "emb"), "contrastive": ({}, "emb"), "npair": ({}, "emb"), "binomial_deviance": ({}, "emb"),
    "multi_similarity": ({}, "emb"), "support_neighbor": ({}, "emb"), "hraml": ({}, "emb"),
    "density_adaptivity": ({"num_classes": 32}, "emb"), "horde": ({}, "horde"),
    "darkrank": ({"mode": "soft", "list_length": 4}, "emb"), "darkrank (hard)": ({"mode": "hard"}, "emb"),
    "darkrank (mc, 64 samples)": ({"mode": "mc", "list_length": None}, "emb"), "fitnet": ({}, "emb"),
    "direct_match": ({}, "emb"),
}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    labels = torch.arange(32).repeat_interleave(4)
    print(f"{'loss':<28} {'ms (fwd+bwd)':>12}   batch 128 (32 x 4), 2048-d, CPU")
    for display, (params, kind) in SETUP.items():
        name = display.split(" ")[0]
        assert name in LOSSES, name
        loss = build_loss(name, **params)
        if hasattr(loss, "set_d0"):
            loss.set_d0(torch.rand(32) + 0.5)
        times = []
        for _ in range(args.repeats + 1):
            if kind == "logits":
                x = torch.randn(128, 751, requires_grad=True)
            elif kind == "horde":
                x = [torch.nn.functional.normalize(torch.randn(128, 512), dim=1).requires_grad_(True)
                     for _ in range(4)]
            else:
                x = torch.nn.functional.normalize(torch.randn(128, 2048), dim=1).requires_grad_(True)
            teacher = torch.randn(128, 751) if kind == "logits" else torch.nn.functional.normalize(
                torch.randn(128, 2048), dim=1)
            start = time.perf_counter()
            value = loss(x, labels, teacher)
            value.backward()
            times.append(time.perf_counter() - start)
        print(f"{display:<28} {1000 * sorted(times[1:])[len(times[1:]) // 2]:>12.2f}", flush=True)
    # The L-Softmax margin is applied in the model's head: time the logits themselves (2048-d -> 751 classes, m = 3)
    # plus the cross-entropy, against the plain linear logits.
    for display, m in (("linear logits + CE", 1), ("large_margin_logits m=3 + CE", 3)):
        times = []
        weight = torch.randn(751, 2048, requires_grad=True)
        ids = torch.randint(0, 751, (128,))
        for _ in range(args.repeats + 1):
            x = torch.randn(128, 2048, requires_grad=True)
            start = time.perf_counter()
            logits = x @ weight.T if m == 1 else large_margin_logits(x, weight, ids, m=m, beta=5.0)
            torch.nn.functional.cross_entropy(logits, ids).backward()
            times.append(time.perf_counter() - start)
        print(f"{display:<28} {1000 * sorted(times[1:])[len(times[1:]) // 2]:>12.2f}", flush=True)


if __name__ == "__main__":
    main()
