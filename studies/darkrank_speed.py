#!/usr/bin/env python
"""The DarkRank student's inference speed-up over its teacher (the paper's 2.96x row), timed in one process.

Run folders do not survive a change of machine and the study's per-run speeds come from different moments (and
possibly machines), so the ratio is measured here on its own: both networks are built from their arm configs
(ImageNet weights; speed does not depend on the fine-tuned values), put in eval mode and timed on the same random
batch, the two alternating repetition by repetition so that a change of machine load hits both alike. The median
images/s of each and their ratio go into a small JSON file (committed) with the machine and the date; the table
is generated from it.

    python studies/darkrank_speed.py [--teacher teacher] [--student student_alone] [--json PATH]
    python studies/darkrank_speed.py --markdown [--json PATH]
"""
from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path
from typing import Any, Dict, Optional, Sequence

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

CONFIGS = REPO / "configs" / "pretrained_study"
JSON = REPO / "benchmarks" / "results" / "darkrank_speed_pretrained.json"
PAPER = "2.96x (NIN-BN student vs Inception-BN teacher, the paper's table)"


def time_pair(models: Dict[str, Any], height: int, width: int, batch: int, reps: int) -> Dict[str, float]:
    """Median images/s of each model on one random batch, the models timed in turn in every repetition."""
    import torch

    x = torch.randn(batch, 3, height, width)
    times: Dict[str, list] = {name: [] for name in models}
    with torch.no_grad():
        for model in models.values():
            model(x)  # warm-up
        for _ in range(reps):
            for name, model in models.items():
                start = time.perf_counter()
                model(x)
                times[name].append(time.perf_counter() - start)
    return {name: batch / statistics.median(t) for name, t in times.items()}


def measure(teacher: str, student: str, batch: int = 256, reps: int = 7) -> Dict[str, Any]:
    import torch

    from benchmarks.pretrained_recipes import machine
    from reid.builders import build_model_from_config
    from reid.config import load_config

    cfgs = {role: load_config(CONFIGS / f"{arm}.yaml") for role, arm in (("teacher", teacher), ("student", student))}
    sizes = {(c["transforms"]["height"], c["transforms"]["width"]) for c in cfgs.values()}
    if len(sizes) != 1:
        raise SystemExit(f"teacher and student must see the same input size to compare speeds, got {sorted(sizes)}")
    (height, width), = sizes
    models = {role: build_model_from_config(cfg, num_classes=None).eval() for role, cfg in cfgs.items()}
    speed = time_pair(models, height, width, batch, reps)
    return {"teacher": teacher, "student": student, "input": f"{height}x{width}", "batch": batch, "reps": reps,
            "threads": torch.get_num_threads(), "machine": machine(), "date": time.strftime("%Y-%m-%d"),
            "teacher_images_per_s": round(speed["teacher"], 1), "student_images_per_s": round(speed["student"], 1),
            "speed_up": round(speed["student"] / speed["teacher"], 2),
            "parameters": {role: sum(p.numel() for p in m.parameters()) for role, m in models.items()}}


def markdown(r: Dict[str, Any]) -> str:
    return "\n".join([
        "| teacher | student | input | teacher img/s | student img/s | student speed-up | paper | machine, date |",
        "| --- | --- | --- | ---: | ---: | ---: | --- | --- |",
        f"| `{r['teacher']}` ({r['parameters']['teacher']:,} parameters) | `{r['student']}` "
        f"({r['parameters']['student']:,}) | {r['input']}, batch {r['batch']} | {r['teacher_images_per_s']:.0f} | "
        f"{r['student_images_per_s']:.0f} | {r['speed_up']:.2f}x | {PAPER} | {r['machine']}, {r['threads']} "
        f"threads, {r['date']} |"])


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--teacher", default="teacher", help="arm of configs/pretrained_study/ (default: teacher)")
    parser.add_argument("--student", default="student_alone", help="arm of configs/pretrained_study/")
    parser.add_argument("--batch", type=int, default=256)
    parser.add_argument("--reps", type=int, default=7)
    parser.add_argument("--json", type=Path, default=JSON)
    parser.add_argument("--markdown", action="store_true", help="print the table of the JSON, time nothing")
    args = parser.parse_args(argv)
    if not args.markdown:
        args.json.write_text(json.dumps(measure(args.teacher, args.student, args.batch, args.reps), indent=1) + "\n")
    print(markdown(json.loads(args.json.read_text())))
    return 0


if __name__ == "__main__":
    sys.exit(main())
