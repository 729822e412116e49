#!/usr/bin/env python
"""Evaluate features computed elsewhere.

    python tools/evaluate.py --query Q.npz --gallery G.npz [--distractors D.npz] [--ap mean|official]
        [--skip-empty|--count-empty] [--rerank [--k1 20 --k2 6 --lambda 0.3]] [--metric euclidean|cosine]
        [--protocol market|single-shot] [--json OUT]

Each .npz holds `features` (n x d), `pids` and optionally `camids` (without camids no same-camera matches are
removed, as for datasets without cameras).
Distractors are appended to the gallery as negatives (pid -2). Prints the CMC/mAP table and writes JSON.
"""
import argparse
import sys
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def load(path: str, need_pids: bool = True):
    try:
        data = np.load(path, allow_pickle=False)
    except (OSError, ValueError) as exc:
        raise SystemExit(f"error: cannot read {path}: {exc}")
    if "features" not in data:
        raise SystemExit(f"error: {path} has no 'features' array (keys: {', '.join(data.files)})")
    feats = torch.from_numpy(np.asarray(data["features"]))
    if need_pids and "pids" not in data:
        raise SystemExit(f"error: {path} has no 'pids' array (keys: {', '.join(data.files)})")
    pids = np.asarray(data["pids"]) if "pids" in data else np.full(len(feats), -2)
    camids = np.asarray(data["camids"]) if "camids" in data else None
    return feats, pids, camids


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--query", required=True)
    parser.add_argument("--gallery", required=True)
    parser.add_argument("--distractors")
    parser.add_argument("--ap", choices=["mean", "official"], default="mean")
    empty = parser.add_mutually_exclusive_group()
    empty.add_argument("--skip-empty", dest="empty", action="store_const", const="skip", default="skip")
    empty.add_argument("--count-empty", dest="empty", action="store_const", const="zero")
    parser.add_argument("--rerank", action="store_true")
    parser.add_argument("--k1", type=int, default=20)
    parser.add_argument("--k2", type=int, default=6)
    parser.add_argument("--lambda", dest="lambda_value", type=float, default=0.3)
    parser.add_argument("--metric", choices=["euclidean", "cosine"], default="euclidean")
    parser.add_argument("--protocol", choices=["market", "single-shot"], default="market")
    parser.add_argument("--json")
    args = parser.parse_args(argv)

    from reid.evaluation import evaluate

    qf, qp, qc = load(args.query)
    gf, gp, gc = load(args.gallery)
    if args.distractors:
        df, _, dc = load(args.distractors, need_pids=False)
        gf = torch.cat([gf, df.to(gf.dtype)])
        gp = np.concatenate([gp, np.full(len(df), -2)])
        if gc is not None:
            gc = np.concatenate([gc, dc if dc is not None else np.full(len(df), -1)])
    try:
        result = evaluate(qf, gf, qp, gp, qc, gc, ap=args.ap, empty=args.empty, metric=args.metric,
                          protocol=args.protocol, rerank=args.rerank, k1=args.k1, k2=args.k2,
                          lambda_value=args.lambda_value)
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(result.table())
    if args.json:
        print(f"results written to {result.save_json(args.json)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
