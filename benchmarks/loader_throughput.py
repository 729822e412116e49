#!/usr/bin/env python
"""Training-loader throughput (images/s) with 0, 1 and 2 workers: P x K sampling, JPEG decoding and the train
pipeline at 256x128.

    python benchmarks/loader_throughput.py [--root /tmp/market/Market-1501-v15.09.15] [--batches 30]

Uses real Market-1501 training images when given their release folder, else the synthetic dataset.
"""
import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from reid.data import build_dataset, build_train_loader  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--root", help="a Market-1501 release folder (default: the synthetic dataset)")
    parser.add_argument("--batches", type=int, default=30)
    args = parser.parse_args()
    ds = build_dataset("market1501", args.root) if args.root else build_dataset("synthetic", "datasets")
    train = [s for s in ds.train]
    print(f"{len(train)} training images from {args.root or 'synthetic'}; train pipeline 256x128, batch 16 x 4")
    for workers in (0, 1, 2):
        loader = build_train_loader(train, {"height": 256, "width": 128}, p=16, k=4, num_workers=workers)
        it = iter(loader)
        next(it)  # start-up
        start = time.time()
        n = 0
        for _ in range(args.batches):
            n += len(next(it)["pid"])
        print(f"workers {workers}: {n / (time.time() - start):.0f} img/s", flush=True)


if __name__ == "__main__":
    main()
