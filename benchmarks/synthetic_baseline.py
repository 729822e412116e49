"""Raw-pixel and colour-histogram baselines on a dataset's query/gallery split (Market-1501 protocol).

    python benchmarks/synthetic_baseline.py [--dataset synthetic --root datasets]

Raw pixels: each image resized to 32x16, flattened, L2-normalised, ranked by squared Euclidean distance.
Histogram: per-channel 16-bin HSV histograms, L2-normalised. The embedded default must stay well below what a
trained model reaches (issue: raw-pixel mAP under 20%).
"""
import argparse
import sys
import time
from pathlib import Path

import cv2
import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from reid.data import build_dataset  # noqa: E402
from reid.evaluation import evaluate  # noqa: E402


def raw_pixels(paths):
    feats = [cv2.resize(cv2.imread(p), (16, 32), interpolation=cv2.INTER_AREA).astype(np.float32).ravel()
             for p in paths]
    x = torch.from_numpy(np.stack(feats))
    return torch.nn.functional.normalize(x, dim=1)


def hsv_histograms(paths, bins=16):
    feats = []
    for p in paths:
        hsv = cv2.cvtColor(cv2.imread(p), cv2.COLOR_BGR2HSV)
        ranges = [(0, 180), (0, 256), (0, 256)]
        feats.append(np.concatenate([cv2.calcHist([hsv], [c], None, [bins], r).ravel() for c, r in
                                     zip(range(3), ranges)]))
    return torch.nn.functional.normalize(torch.from_numpy(np.stack(feats).astype(np.float32)), dim=1)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--dataset", default="synthetic")
    parser.add_argument("--root", default="datasets")
    args = parser.parse_args()
    start = time.time()
    ds = build_dataset(args.dataset, args.root)
    print(f"dataset built in {time.time() - start:.1f} s\n{ds.summary()}")
    for name, fn in (("raw pixels 32x16", raw_pixels), ("HSV histograms", hsv_histograms)):
        q = fn([s.path for s in ds.query])
        g = fn([s.path for s in ds.gallery])
        res = evaluate(q, g, [s.pid for s in ds.query], [s.pid for s in ds.gallery],
                       [s.camid for s in ds.query], [s.camid for s in ds.gallery])
        print(f"\n{name}:\n{res.table()}")


if __name__ == "__main__":
    main()
