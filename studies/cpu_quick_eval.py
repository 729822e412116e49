#!/usr/bin/env python
"""Evaluate the runs of the scaled-down CPU studies on real Market-1501 (BENCHMARKS.md, "Scaled-down studies").

For each finished run folder `runs/quick_<name>` (its config.yaml and final weights), features are extracted once
(flip test) and evaluated single-query, multi-query (gt_bbox, mean pooling) and single-query + k-reciprocal
re-ranking; HORDE runs also with all orders concatenated. Inference speed (eval mode, batch 256, 2 threads) is timed
per network, for the student / teacher ratio of the DarkRank study: `--speed-only` re-times the given runs alone,
on an idle machine. `--gallery-study NAME` adds the distractor-gallery study: the training images (identities
disjoint from the test ones) are appended to the gallery as negatives, in growing seeded random subsets, for the
gallery-size curve of the SN paper's Figure 4.

    python studies/cpu_quick_eval.py --root /tmp/market [--runs sn triplet ...] [--gallery-study sn]
        [--json runs/quick_eval.json]
    python studies/cpu_quick_eval.py --markdown [--json runs/quick_eval.json]   # the tables of BENCHMARKS.md
"""
from __future__ import annotations

import argparse
import json
import re
import sys
import time
from pathlib import Path
from dataclasses import replace
from typing import Any, Callable, Dict, List, Optional

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from reid.config import load_config  # noqa: E402
from reid.data.datasets.base import DISTRACTOR_PID  # noqa: E402
from reid.data.cache import decode_split, default_cache_dir  # noqa: E402
from reid.data.loader import build_test_loader  # noqa: E402
from reid.builders import build_dataset_from_config  # noqa: E402
from reid.engine.evaluator import FeatureSet, evaluate_features, feature_set  # noqa: E402
from reid.evaluation import clustering_nmi, recall_at_k  # noqa: E402
from reid.engine.tester import load_trained_model  # noqa: E402

DEFAULT_RUNS = ["softmax", "sn", "triplet", "triplet_soft", "triplet_density", "triplet_horde", "hraml",
                "student_alone", "student_kd", "student_soft", "student_hard", "student_kd_soft"]


def summary(result) -> Dict[str, float]:
    return {"rank1": round(100 * result.rank(1), 2), "mAP": round(100 * result.mAP, 2),
            "mINP": round(100 * result.mINP, 2), "queries": int(result.num_queries)}


def images_per_second(model: torch.nn.Module, height: int, width: int, batch: int = 256, reps: int = 5) -> float:
    x = torch.randn(batch, 3, height, width)
    times = []
    with torch.no_grad():
        model(x)  # warm-up
        for _ in range(reps):
            start = time.perf_counter()
            model(x)
            times.append(time.perf_counter() - start)
    return batch / float(np.median(times))


def evaluate_run(folder: Path, root: str, gallery_study: bool, single_query_only: bool = False,
                 dml_metrics: bool = False, decoded_cache: bool = False) -> Dict[str, Any]:
    """`decoded_cache`: query and gallery from the decoded-image cache of the data root (as the trainer's own
    evaluation reads them; decoded once for all runs) instead of per-file decoding (the earlier studies' path)."""
    cfg = load_config(folder / "config.yaml", [f"data.root={root}"])
    checkpoint = str(final_weights(folder))
    dataset = build_dataset_from_config(cfg, multi_query=True)
    model = load_trained_model(cfg, checkpoint, torch.device("cpu"))
    tcfg, bs, workers = cfg["transforms"], cfg["data"]["test_batch_size"], cfg["data"]["num_workers"]

    def features(samples, desc: str) -> FeatureSet:
        decoded = None
        if decoded_cache:
            decoded, _ = decode_split([s.path for s in samples], tcfg["height"], tcfg["width"],
                                      cache_dir=default_cache_dir(root, folder), max_gb=cfg["data"]["cache_max_gb"])
        loader = build_test_loader(samples, tcfg, batch_size=bs, num_workers=workers, decoded=decoded)
        return feature_set(model, samples, loader, torch.device("cpu"), flip=bool(cfg["train"]["flip_test"]),
                           desc=desc, progress=False)

    query, gallery = features(dataset.query, "query"), features(dataset.gallery, "gallery")
    test_cfg = dict(cfg["test"], rerank=False)
    out: Dict[str, Any] = {"run": folder.name, "seed": cfg["seed"], "backbone": cfg["model"]["backbone"]}
    out["single_query"] = summary(evaluate_features(query, gallery, test_cfg))
    if not single_query_only:
        from reid.engine.tester import _multi_query_groups, pool_groups  # noqa: WPS433 - only for multi-query

        mq_samples, mq_rows = _multi_query_groups(dataset)
        mq = pool_groups(features(mq_samples, "multi-query").features, mq_rows, "mean")
        out["multi_query"] = summary(evaluate_features(query, gallery, test_cfg, query_features=mq))
        out["rerank"] = summary(evaluate_features(query, gallery, dict(test_cfg, rerank=True)))
    if dml_metrics:
        out["dml"] = metric_learning_scores(query, gallery)
    if getattr(model, "horde", None) is not None:
        model.test_high_order = True
        hq, hg = features(dataset.query, "query"), features(dataset.gallery, "gallery")
        out["high_order"] = summary(evaluate_features(hq, hg, test_cfg))
        fit = features(pca_samples(dataset.train, seed=int(cfg["seed"])), "train (PCA)").features
        model.test_high_order = False
        reduce = pca_projection(fit, int(model.embedding_dim))
        out["high_order_pca"] = summary(evaluate_features(
            replace(hq, features=reduce(hq.features)), replace(hg, features=reduce(hg.features)), test_cfg))
    out["images_per_s"] = round(images_per_second(model, tcfg["height"], tcfg["width"]), 1)
    out["parameters"] = sum(p.numel() for p in model.parameters())
    out["train_seconds"] = training_seconds(folder)
    if gallery_study:
        out["gallery_study"] = gallery_size_curve(query, gallery, features(dataset.train, "train"), test_cfg,
                                                  seed=cfg["seed"])
    return out


def pca_samples(train: List[Any], seed: int, count: int = 2000) -> List[Any]:
    """A seeded random subset of the training images (identities disjoint from the test ones) to fit the PCA on."""
    rng = np.random.default_rng(seed)
    rows = np.sort(rng.choice(len(train), size=min(count, len(train)), replace=False))
    return [train[i] for i in rows]


def pca_projection(fit: torch.Tensor, dim: int) -> Callable[[torch.Tensor], torch.Tensor]:
    """HORDE's test-time reduction (Jacob et al. ICCV 2019): all orders concatenated, projected by PCA onto `dim`
    components (order 1's dimension) fitted on training features, then L2-normalised."""
    x = fit.double()
    mean = x.mean(0, keepdim=True)
    _, _, vh = torch.linalg.svd(x - mean, full_matrices=False)
    basis = vh[:dim].T

    def reduce(features: torch.Tensor) -> torch.Tensor:
        return torch.nn.functional.normalize(((features.double() - mean) @ basis).float(), dim=1)

    return reduce


def metric_learning_scores(query: FeatureSet, gallery: FeatureSet) -> Dict[str, float]:
    """The deep-metric-learning papers' metrics (density adaptivity, HORDE) on the test identities: Recall@K with
    every query and gallery image of a test identity (distractors and junk left out) as a query against all the
    others, and the NMI of k-means with one cluster per identity (seed 0)."""
    keep_q, keep_g = query.pids > 0, gallery.pids > 0
    features = torch.cat([query.features[torch.from_numpy(keep_q)], gallery.features[torch.from_numpy(keep_g)]])
    labels = np.concatenate([query.pids[keep_q], gallery.pids[keep_g]])
    scores = {f"recall@{k}": round(100 * v, 2) for k, v in recall_at_k(features, labels, ks=(1, 2, 4, 8)).items()}
    scores["nmi"] = round(100 * float(clustering_nmi(features, labels)), 2)
    return scores


def final_weights(folder: Path) -> Path:
    """best.pth where the trainer evaluated (its one evaluation is after the last epoch), else the last checkpoint."""
    return folder / "best.pth" if (folder / "best.pth").exists() else folder / "checkpoint.pth"


def finished(folder: Path) -> bool:
    """Whether the run's training went to its end (train.log says so), as cpu_quick_study.sh checks."""
    log = folder / "train.log"
    return log.exists() and "training done" in log.read_text()


def training_seconds(folder: Path) -> Optional[float]:
    """Wall time of an uninterrupted run from its train.log; None for a resumed run (its time is not comparable)."""
    log = (folder / "train.log").read_text()
    done = re.findall(r"training done in ([0-9.]+) s", log)
    return float(done[-1]) if done and "resumed from" not in log else None


def gallery_size_curve(query: FeatureSet, gallery: FeatureSet, extra: FeatureSet, test_cfg, seed: int,
                       steps: int = 4) -> List[Dict[str, Any]]:
    """SQ results as seeded random subsets of `extra` (negatives for every query) join the gallery."""
    order = np.random.default_rng(seed).permutation(len(extra.paths))
    rows = []
    for step in range(steps + 1):
        take = order[: round(len(order) * step / steps)]
        grown = FeatureSet(
            torch.cat([gallery.features, extra.features[take]]),
            np.concatenate([gallery.pids, np.full(len(take), DISTRACTOR_PID, dtype=gallery.pids.dtype)]),
            np.concatenate([gallery.camids, extra.camids[take]]),
            gallery.paths + [extra.paths[i] for i in take],
        )
        rows.append({"gallery_size": len(grown.paths), "added": len(take),
                     **summary(evaluate_features(query, grown, test_cfg))})
    return rows


LOSS_ROWS = [("softmax", "softmax (label smoothing 0.1)"), ("triplet", "batch-hard triplet (margin 0.3)"),
             ("triplet_soft", "batch-hard triplet (soft margin)"),
             ("sn", "Support Neighbor (K 10, sigma 50, lambda 0.1)"), ("hraml", "HRAML (identity one-hot targets)")]
REGULARIZER_ROWS = [("triplet_soft", "batch-hard triplet (soft margin)"),
                    ("triplet_density", "+ density adaptivity (lambda 10, eta 0.5)"),
                    ("triplet_horde", "+ HORDE (orders 2-3), order 1 at test")]
STUDENT_ROWS = [("softmax", "teacher: small CNN, softmax"), ("student_alone", "student alone (small_half, softmax)"),
                ("student_hard", "+ hard DarkRank"), ("student_soft", "+ soft DarkRank"), ("student_kd", "+ KD"),
                ("student_kd_soft", "+ KD + soft DarkRank")]


def pair(r: Dict[str, Any]) -> str:
    return f"{r['rank1']:.2f} / {r['mAP']:.2f}" if r else "-"


def seed_spread(results: Dict[str, Any], names: List[str]) -> Dict[str, Any]:
    """Per run name with more than one seed (runs `<name>`, `<name>_seedN`): seeds, then per metric the per-seed
    values (seed order) and their mean +- sample std."""
    out = {}
    for name in names:
        runs = [r for k, r in results.items() if re.fullmatch(rf"{name}(_seed\d+)?", k) and "single_query" in r]
        if len(runs) < 2:
            continue
        runs.sort(key=lambda r: r["seed"])
        cells = []
        for metric in ("rank1", "mAP"):
            v = np.array([r["single_query"][metric] for r in runs])
            cells.append(f"{', '.join(f'{x:.2f}' for x in v)} ({v.mean():.2f} +- {v.std(ddof=1):.2f})")
        out[name] = ([r["seed"] for r in runs], *cells)
    return out


def markdown(results: Dict[str, Any]) -> str:
    """The study tables, rendered from the JSON (seed and training wall time per row)."""
    def minutes(r):
        folder = Path("runs") / r["run"]
        seconds = training_seconds(folder) if (folder / "train.log").exists() else r.get("train_seconds")
        return f"{seconds / 60:.1f} min" if seconds else "- (resumed run)"

    lines = ["| loss | training (2 cores) | single query R1 / mAP | multi-query R1 / mAP | + re-ranking R1 / mAP |",
             "| --- | --- | --- | --- | --- |"]
    lines += [f"| {label} | {minutes(results[k])} | {pair(results[k]['single_query'])} | "
              f"{pair(results[k].get('multi_query'))} | {pair(results[k].get('rerank'))} |"
              for k, label in LOSS_ROWS if k in results]
    lines += ["", "| base loss + regularizer | single query R1 / mAP | multi-query R1 / mAP | + re-ranking R1 / mAP |",
              "| --- | --- | --- | --- |"]
    lines += [f"| {label} | {pair(results[k]['single_query'])} | {pair(results[k].get('multi_query'))} | "
              f"{pair(results[k].get('rerank'))} |" for k, label in REGULARIZER_ROWS if k in results]
    if "high_order" in results.get("triplet_horde", {}):
        lines.append(f"| + HORDE, orders 1-3 concatenated at test | {pair(results['triplet_horde']['high_order'])} "
                     "| - | - |")
    spread = seed_spread(results, [k for k, _ in REGULARIZER_ROWS])
    if spread:
        lines += ["", "| base loss + regularizer | seeds | single query R1 per seed (mean +- std) | "
                  "single query mAP per seed (mean +- std) |",
                  "| --- | --- | --- | --- |"]
        labels = dict(REGULARIZER_ROWS)
        lines += [f"| {labels[k]} | {', '.join(map(str, seeds))} | {r1} | {m} |"
                  for k, (seeds, r1, m) in spread.items()]
    teacher = results.get("softmax", {}).get("images_per_s")
    lines += ["", "| DarkRank study | parameters | inference img/s (speed vs teacher) | single query R1 / mAP |",
              "| --- | ---: | --- | --- |"]
    for k, label in STUDENT_ROWS:
        if k in results:
            r = results[k]
            ratio = f" ({r['images_per_s'] / teacher:.2f}x)" if teacher else ""
            lines.append(f"| {label} | {r['parameters']:,} | {r['images_per_s']:.0f}{ratio} | "
                         f"{pair(r['single_query'])} |")
    for k, r in results.items():
        if r.get("gallery_study"):
            lines += ["", f"| gallery size ({k} model) | training images added | R1 / mAP |", "| ---: | ---: | --- |"]
            lines += [f"| {g['gallery_size']:,} | {g['added']:,} | {pair(g)} |" for g in r["gallery_study"]]
    return "\n".join(lines)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--root", help="the folder holding Market-1501-v15.09.15")
    parser.add_argument("--runs", nargs="+", default=DEFAULT_RUNS, help="run names (folders runs/quick_<name>)")
    parser.add_argument("--gallery-study", metavar="NAME", help="run whose model does the gallery-size study")
    parser.add_argument("--json", default="runs/quick_eval.json", help="results are merged into this file")
    parser.add_argument("--single-query-only", action="store_true", help="skip multi-query and re-ranking")
    parser.add_argument("--speed-only", action="store_true",
                        help="only time inference (run it on an idle machine: the ratios are what matter)")
    parser.add_argument("--skip-done", action="store_true", help="skip runs whose results are already in --json")
    parser.add_argument("--markdown", action="store_true", help="print the tables from --json and exit")
    args = parser.parse_args(argv)
    if args.markdown:
        print(markdown(json.loads(Path(args.json).read_text())))
        return 0
    if not args.root:
        parser.error("--root is required (the folder holding Market-1501-v15.09.15)")
    torch.set_num_threads(2)
    path = Path(args.json)
    results = json.loads(path.read_text()) if path.exists() else {}
    for name in args.runs:
        folder = Path("runs") / f"quick_{name}"
        if not finished(folder):
            print(f"{name}: {folder} holds no finished training run, skipped", file=sys.stderr)
            continue
        if args.skip_done and "single_query" in results.get(name, {}):
            print(f"{name}: already evaluated in {path}, skipped", flush=True)
            continue
        if args.speed_only:
            cfg = load_config(folder / "config.yaml", [f"data.root={args.root}"])
            model = load_trained_model(cfg, str(final_weights(folder)), torch.device("cpu"))
            speed = images_per_second(model, cfg["transforms"]["height"], cfg["transforms"]["width"])
            results.setdefault(name, {})["images_per_s"] = round(speed, 1)
            path.write_text(json.dumps(results, indent=1))
            print(f"{name}: {speed:.1f} img/s", flush=True)
            continue
        start = time.perf_counter()
        results[name] = evaluate_run(folder, args.root, gallery_study=(name == args.gallery_study),
                                     single_query_only=args.single_query_only)
        results[name]["eval_seconds"] = round(time.perf_counter() - start, 1)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(results, indent=1))
        r = results[name]
        modes = [m for m in ("single_query", "multi_query", "rerank", "high_order") if m in r]
        print(f"{name}: " + "  ".join(f"{m} {pair(r[m])}" for m in modes) + f"  {r['images_per_s']} img/s",
              flush=True)
        for row in r.get("gallery_study", []):
            print(f"  gallery {row['gallery_size']}: R1 {row['rank1']} mAP {row['mAP']}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
