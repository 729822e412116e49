#!/usr/bin/env python
"""Training-loader throughput (images/s) with 0, 1 and 2 workers: P x K sampling, JPEG decoding and the train
pipeline at 256x128 (pad + crop, flip, random erasing, normalise, CHW tensor).

    python benchmarks/loader_throughput.py [--root DIR] [--batches 20] [--single-thread]

DIR is a folder of Market-1501-named JPEGs (`0001_c1s1_001051_00.jpg`); by default the real
`/tmp/market/Market-1501-v15.09.15/bounding_box_train` when present (research-only data: never commit it),
else 64x128 JPEGs generated into a temporary folder.
"""
import argparse
import re
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from reid.data.train_loader import build_train_loader  # noqa: E402

MARKET_TRAIN = Path("/tmp/market/Market-1501-v15.09.15/bounding_box_train")
NAME = re.compile(r"^(-1|\d{4})_c(\d)")


@dataclass
class Item:
    path: str
    pid: int
    camid: int
    extras: dict = field(default_factory=dict)


def generate(root: Path, num_ids: int = 512, per_id: int = 4) -> None:
    rng = np.random.default_rng(0)
    for pid in range(1, num_ids + 1):
        for j in range(per_id):
            img = rng.integers(0, 256, (128, 64, 3), dtype=np.uint8)
            cv2.imwrite(str(root / f"{pid:04d}_c{j % 6 + 1}s1_{j:06d}_00.jpg"), cv2.GaussianBlur(img, (7, 7), 2))


def scan(root: Path) -> list:
    items = []
    for p in sorted(root.glob("*.jpg")):
        m = NAME.match(p.name)
        if m and int(m.group(1)) > 0:
            items.append(Item(str(p), int(m.group(1)), int(m.group(2))))
    if not items:
        raise SystemExit(f"no Market-1501-named JPEGs in {root}")
    return items


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--root", type=Path, help="folder of Market-1501-named JPEGs")
    parser.add_argument("--generated", action="store_true", help="use generated JPEGs even if Market is present")
    parser.add_argument("--batches", type=int, default=20)
    parser.add_argument("--single-thread", action="store_true",
                        help="torch and OpenCV to 1 thread in the main process (what workers do)")
    args = parser.parse_args()
    if args.single_thread:
        # On a small shared machine, many intra-op threads in the main process thrash (see results/loader.md).
        torch.set_num_threads(1)
        cv2.setNumThreads(0)
    tmp = None
    root = args.root or (MARKET_TRAIN if MARKET_TRAIN.is_dir() and not args.generated else None)
    if root is None:
        tmp = tempfile.TemporaryDirectory()
        root = Path(tmp.name)
        generate(root)
    items = scan(root)
    print(f"{len(items)} images from {root}; train pipeline 256x128, batch 16 x 4, {args.batches} batches")
    for workers in (0, 1, 2):
        loader = build_train_loader(items, {"height": 256, "width": 128}, p=16, k=4, num_workers=workers,
                                    pipeline="albumentations")
        batches = min(args.batches, len(loader) - 1)  # one epoch at most: the first batch is start-up
        it = iter(loader)
        next(it)  # start-up (worker spawn) excluded
        start = time.perf_counter()
        n = sum(len(next(it)["pid"]) for _ in range(batches))
        print(f"workers {workers}: {n / (time.perf_counter() - start):.0f} img/s", flush=True)
        del it, loader  # stop the persistent workers before the next setting (and before cleanup)
    if tmp is not None:
        tmp.cleanup()


if __name__ == "__main__":
    main()
