"""Evaluate features computed elsewhere (`reid-evaluate`; tools/evaluate.py in a checkout).

    reid-evaluate --query Q.npz --gallery G.npz [--distractors D.npz] [--ap mean|official]
        [--skip-empty|--count-empty] [--rerank [--k1 20 --k2 6 --lambda 0.3] [--knn-backend exact|faiss]]
        [--metric euclidean|cosine]
        [--protocol market|single-shot] [--json OUT]

Each .npz holds `features` (n x d), `pids` and optionally `camids` (without camids no same-camera matches are
removed, as for datasets without cameras).
Distractors are appended to the gallery as negatives (pid -2). Prints the CMC/mAP table and writes JSON.
"""
from __future__ import annotations

import argparse
import os
import sys
import zipfile
from pathlib import Path
from typing import Optional, Sequence, Tuple

import numpy as np
import torch

from ..utils import install_hint


class InputError(ValueError):
    """An input or output file the tool cannot use; reported in one line with exit code 2."""


def _array(path: str, data, key: str) -> np.ndarray:
    try:
        return np.asarray(data[key])
    except ValueError as exc:  # object arrays need pickle, which is never enabled for safety
        raise InputError(f"{path}: array '{key}' cannot be loaded ({exc}); save plain numeric arrays "
                         "(np.savez with float features and integer ids)") from None


def _ids(path: str, data, key: str, count: int) -> np.ndarray:
    """Integer ids of array `key`: refuses fractions and strings rather than truncating or failing later."""
    values = _array(path, data, key)
    if values.ndim != 1 or len(values) != count:
        raise InputError(f"{path}: '{key}' must be a 1-D array of {count} ids (one per feature row), "
                         f"got shape {values.shape}")
    if values.dtype.kind in "iu":
        return values.astype(np.int64)
    if values.dtype.kind == "f":
        bad = np.flatnonzero(~np.isfinite(values) | (values != np.round(values)))
        if len(bad):
            raise InputError(f"{path}: '{key}' must hold integers, got {values[bad[0]].item()!r} at index {bad[0]} "
                             f"({len(bad)} non-integer value(s))")
        return values.astype(np.int64)
    example = values[0].item() if len(values) else None  # .item(): plain repr, not np.str_(...)
    raise InputError(f"{path}: '{key}' must hold integers, got dtype {values.dtype} (e.g. {example!r})")


def load(path: str, need_pids: bool = True) -> Tuple[torch.Tensor, np.ndarray, Optional[np.ndarray]]:
    """(features, pids, camids) of an .npz file; InputError naming the file and array for anything unusable."""
    if not os.path.isfile(path):
        raise InputError(f"{path}: file not found" if not os.path.exists(path) else f"{path}: not a file")
    try:
        data = np.load(path, allow_pickle=False)
    except (OSError, ValueError, EOFError, zipfile.BadZipFile) as exc:
        raise InputError(f"cannot read {path}: {exc} (expected an .npz from np.savez)") from None
    if not isinstance(data, np.lib.npyio.NpzFile):
        raise InputError(f"{path} is a plain .npy array; expected an .npz holding 'features' (n x d), 'pids' and "
                         "optionally 'camids' (np.savez(path, features=..., pids=..., camids=...))")
    if "features" not in data:
        raise InputError(f"{path} has no 'features' array (keys: {', '.join(data.files)})")
    feats = _array(path, data, "features")
    if feats.ndim != 2 or feats.dtype.kind not in "fiu":
        raise InputError(f"{path}: 'features' must be a 2-D numeric array (n x d), got shape {feats.shape} "
                         f"dtype {feats.dtype}")
    if not np.isfinite(feats).all():
        raise InputError(f"{path}: 'features' holds {int((~np.isfinite(feats)).sum())} NaN or infinite value(s)")
    if need_pids and "pids" not in data:
        raise InputError(f"{path} has no 'pids' array (keys: {', '.join(data.files)})")
    pids = _ids(path, data, "pids", len(feats)) if "pids" in data else np.full(len(feats), -2)
    camids = _ids(path, data, "camids", len(feats)) if "camids" in data else None
    return torch.from_numpy(np.ascontiguousarray(feats)), pids, camids


def check_output(path: str) -> None:
    """Refuse an output path that cannot be written before the evaluation runs, not after it."""
    target = Path(path)
    if target.is_dir():
        raise InputError(f"--json {path} is a folder; give a file path such as {target / 'results.json'}")
    parent = next((p for p in [target.parent, *target.parent.parents] if p.exists()), Path("."))
    if not parent.is_dir() or not os.access(parent, os.W_OK | os.X_OK):
        raise InputError(f"--json {path}: cannot write there ({parent} is not a writable folder)")


def _at_least(minimum: int):
    """argparse type: an integer >= minimum (k1 / k2 below 1 make the re-ranking neighbourhoods empty)."""
    def parse(text: str) -> int:
        value = int(text)
        if value < minimum:
            raise argparse.ArgumentTypeError(f"expected a number >= {minimum}, got {text}")
        return value
    return parse


def _fraction(text: str) -> float:
    value = float(text)
    if not 0.0 <= value <= 1.0:
        raise argparse.ArgumentTypeError(f"expected a number in [0, 1], got {text}")
    return value


def main(argv: Optional[Sequence[str]] = None) -> int:
    """`reid-evaluate`: exit 0, or 2 with a one-line error."""
    from ..config.schema import CHOICES  # the options' values: the config schema's (test.ap, ...)
    from ..evaluation.knn import KNN_BACKENDS

    parser = argparse.ArgumentParser(prog="reid-evaluate", description=__doc__.split("\n\n")[0])
    parser.add_argument("--query", required=True)
    parser.add_argument("--gallery", required=True)
    parser.add_argument("--distractors")
    parser.add_argument("--ap", choices=CHOICES["test.ap"], default="mean")
    empty = parser.add_mutually_exclusive_group()
    empty.add_argument("--skip-empty", dest="empty", action="store_const", const="skip", default="skip")
    empty.add_argument("--count-empty", dest="empty", action="store_const", const="zero")
    parser.add_argument("--rerank", action="store_true")
    parser.add_argument("--k1", type=_at_least(1), default=20)
    parser.add_argument("--k2", type=_at_least(1), default=6)
    parser.add_argument("--lambda", dest="lambda_value", type=_fraction, default=0.3)
    parser.add_argument("--knn-backend", choices=KNN_BACKENDS, default="exact",
                        help="k-NN of the re-ranking (with --rerank): exact (ours) or faiss "
                             f"({install_hint('faiss')}); both give identical results")
    parser.add_argument("--metric", choices=CHOICES["test.metric"], default="euclidean")
    parser.add_argument("--protocol", choices=CHOICES["test.protocol"], default="market")
    parser.add_argument("--json", help="also write the results JSON here (never over an input, a checkpoint or a "
                        "file this tool did not write, unless --force)")
    parser.add_argument("--force", action="store_true",
                        help="let --json replace an existing file that is not a results file (never an input)")
    args = parser.parse_args(argv)

    from ..evaluation import evaluate

    try:
        if args.json:
            from .outputs import is_results_json, output_problem

            problem = output_problem(args.json, "--json", [("--query", args.query), ("--gallery", args.gallery),
                                                           ("--distractors", args.distractors)],
                                     ours=is_results_json, force=args.force)
            if problem:
                raise InputError(problem)
            check_output(args.json)
        qf, qp, qc = load(args.query)
        gf, gp, gc = load(args.gallery)
        if qf.shape[1] != gf.shape[1]:
            raise InputError(f"{args.query} features are {qf.shape[1]}-d but {args.gallery} features are "
                             f"{gf.shape[1]}-d (both must come from the same model)")
        if args.distractors:
            df, _, dc = load(args.distractors, need_pids=False)
            if df.shape[1] != gf.shape[1]:
                raise InputError(f"{args.distractors} features are {df.shape[1]}-d but {args.gallery} features "
                                 f"are {gf.shape[1]}-d (distractors must come from the same model)")
            gf = torch.cat([gf, df.to(gf.dtype)])
            gp = np.concatenate([gp, np.full(len(df), -2)])
            if gc is not None:
                gc = np.concatenate([gc, dc if dc is not None else np.full(len(df), -1)])
        result = evaluate(qf, gf, qp, gp, qc, gc, ap=args.ap, empty=args.empty, metric=args.metric,
                          protocol=args.protocol, rerank=args.rerank, k1=args.k1, k2=args.k2,
                          lambda_value=args.lambda_value, knn_backend=args.knn_backend)
    except (ValueError, ImportError) as exc:  # InputError included; ImportError: faiss asked for, not installed
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(result.table())
    if args.json:
        try:
            print(f"results written to {result.save_json(args.json)}")
        except OSError as exc:
            print(f"error: cannot write --json {args.json}: {exc}", file=sys.stderr)
            return 2
    return 0

