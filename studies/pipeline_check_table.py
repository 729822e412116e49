#!/usr/bin/env python
"""Old vs new data path on the scaled-down Support Neighbor recipe, over seeds: the table of BENCHMARKS.md.

    SEED=s bash studies/cpu_quick_study.sh MARKET sn                              # new (tensor) path, s = 0, 1, 2
    PIPELINE=albumentations SEED=s bash studies/cpu_quick_study.sh MARKET sn      # old path
    python studies/pipeline_check_table.py --eval runs/quick_eval.json [runs/anchor_eval.json ...] \
        --save benchmarks/results/quick_sn_pipelines.json

Reads the runs' single-query results (cpu_quick_eval.py's JSON), keeps the Support Neighbor runs of both
pipelines (`sn`, `sn_seedN`: tensor; `sn_albu`, `sn_albu_seedN`: albumentations), saves them (the small results
JSON that is committed) and prints mean +- std (sample std, n - 1) per pipeline, with every seed's value.
"""
from __future__ import annotations

import argparse
import json
import re
from pathlib import Path
from typing import Dict, List

import numpy as np

NAME = re.compile(r"^sn(?P<albu>_albu)?(?:_seed(?P<seed>\d+))?$")


def collect(files: List[str]) -> Dict[str, Dict[int, Dict[str, float]]]:
    runs: Dict[str, Dict[int, Dict[str, float]]] = {"tensor": {}, "albumentations": {}}
    for file in files:
        for name, result in json.loads(Path(file).read_text()).items():
            m = NAME.match(name)
            if m and "single_query" in result:
                pipeline = "albumentations" if m["albu"] else "tensor"
                seed = int(m["seed"] or 0)
                runs[pipeline][seed] = {k: result["single_query"][k] for k in ("rank1", "mAP")}
    return runs


def markdown(runs: Dict[str, Dict[int, Dict[str, float]]]) -> str:
    lines = ["| data path | seeds | rank-1 (mean +- std) | mAP (mean +- std) | mAP per seed |",
             "| --- | --- | ---: | ---: | --- |"]
    for pipeline, label in (("albumentations", "old: per-file albumentations"), ("tensor", "new: tensor pipeline")):
        by_seed = runs[pipeline]
        if not by_seed:
            continue
        seeds = sorted(by_seed)
        r1 = np.array([by_seed[s]["rank1"] for s in seeds])
        mAP = np.array([by_seed[s]["mAP"] for s in seeds])
        std = (lambda v: float(v.std(ddof=1)) if len(v) > 1 else float("nan"))
        lines.append(f"| {label} | {', '.join(map(str, seeds))} | {r1.mean():.2f} +- {std(r1):.2f} | "
                     f"{mAP.mean():.2f} +- {std(mAP):.2f} | "
                     + ", ".join(f"{s}: {by_seed[s]['mAP']:.2f}" for s in seeds) + " |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--eval", nargs="+", default=["runs/quick_eval.json"], help="cpu_quick_eval.py JSON files")
    parser.add_argument("--save", help="write the collected per-seed results here")
    parser.add_argument("--load", help="print the table from a saved file instead")
    args = parser.parse_args()
    runs = ({k: {int(s): v for s, v in d.items()} for k, d in json.loads(Path(args.load).read_text()).items()}
            if args.load else collect(args.eval))
    if args.save:
        Path(args.save).write_text(json.dumps(runs, indent=1))
    print(markdown(runs))


if __name__ == "__main__":
    main()
