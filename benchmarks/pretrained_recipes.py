"""The pretrained recipes' results table (issue: ImageNet-pretrained backbones with no network).

Each row is one evaluated point of a run: a checkpoint of `configs/pretrained/*.yaml` after N epochs, evaluated
with `tools/test.py` (single query, flip test as the recipe says; again with `--rerank`). `collect` reads the run's
config, its `train.log` (training minutes: the sum of the logged epoch times up to that epoch, evaluation excluded)
and the two results JSONs, and stores the row in benchmarks/results/pretrained_recipes.json; `table` writes the
rows between `<!-- pretrained:recipes -->` and `<!-- /pretrained:recipes -->` of the given Markdown files.

    python tools/test.py --checkpoint runs/pretrained/lite0_128x64/checkpoint.pth --json /tmp/plain.json
    python tools/test.py --checkpoint runs/pretrained/lite0_128x64/checkpoint.pth --rerank --json /tmp/rerank.json
    python benchmarks/pretrained_recipes.py collect --run runs/pretrained/lite0_128x64 --epoch 14 \
        --result /tmp/plain.json --rerank-result /tmp/rerank.json
    python benchmarks/pretrained_recipes.py table --into BENCHMARKS.md README.md

Without `--result`, the row takes the single-query figures the trainer logged after that epoch (its own evaluation,
flip test as configured), and `--variant` names the overrides a run was started with (e.g. `no head conv`).
"""
from __future__ import annotations

import argparse
import json
import re
import subprocess
import time
from pathlib import Path
from typing import Any, Dict, List, Optional

import yaml

RESULTS = Path(__file__).resolve().parent / "results" / "pretrained_recipes.json"
MARKERS = ("<!-- pretrained:recipes -->", "<!-- /pretrained:recipes -->")
EPOCH_LINE = re.compile(r" epoch (\d+): .*epoch time (?:(\d+):)?(\d+):(\d+)")
COLUMNS = ("backbone", "input", "iterations", "training images", "training minutes", "machine", "R1", "mAP",
           "+ re-ranking R1 / mAP")


def epoch_minutes(log_text: str) -> Dict[int, float]:
    """Epoch -> its logged time in minutes; an epoch logged twice (a run resumed from before its end) keeps the
    last, the one the checkpoint continued from."""
    minutes: Dict[int, float] = {}
    for match in EPOCH_LINE.finditer(log_text):
        hours, mins, secs = int(match.group(2) or 0), int(match.group(3)), int(match.group(4))
        minutes[int(match.group(1))] = hours * 60 + mins + secs / 60
    return minutes


def machine() -> str:
    """The CPU's model name, its vector extensions that matter for torch (AVX-512 / AVX2) and the cores."""
    text = subprocess.run(["lscpu"], capture_output=True, text=True).stdout
    fields = dict(line.split(":", 1) for line in text.splitlines() if ":" in line)
    flags = fields.get("Flags", "")
    isa = "AVX-512" if "avx512f" in flags else ("AVX2" if "avx2" in flags else "no AVX2")
    # "AMD EPYC" names two machines of this workplace (AVX2 and AVX-512): the family and model tell them apart
    family = f" (family {fields['CPU family'].strip()} model {fields['Model'].strip()})" if "CPU family" in fields else ""
    return f"{fields.get('Model name', '?').strip()}{family}, {fields.get('CPU(s)', '?').strip()} cores, {isa}"


def logged_result(log_text: str, epoch: int) -> Dict[str, float]:
    """The single-query rank-1 and mAP (fractions) of the evaluation the trainer logged after `epoch` (the last one
    logged, if the run was resumed across it)."""
    found = re.findall(rf"evaluation after epoch {epoch}:\n\s*Rank-1.*mAP.*\n\s*([\d.]+)%\s+[\d.]+%\s+[\d.]+%\s+"
                       rf"[\d.]+%\s+([\d.]+)%", log_text)
    if not found:
        raise SystemExit(f"train.log has no evaluation after epoch {epoch}: pass --result (tools/test.py --json)")
    rank1, mean_ap = found[-1]
    return {"rank1": float(rank1) / 100, "mAP": float(mean_ap) / 100}


def make_row(run: Path, epoch: int, result: Dict[str, Any], rerank: Optional[Dict[str, Any]],
             note: str = "", variant: str = "") -> Dict[str, Any]:
    cfg = yaml.safe_load((run / "config.yaml").read_text())
    per_epoch = int(cfg["train"]["iters_per_epoch"])
    minutes = epoch_minutes((run / "train.log").read_text())
    missing = [e for e in range(1, epoch + 1) if e not in minutes]
    if missing:
        raise SystemExit(f"{run / 'train.log'} has no epoch time for epoch(s) {missing}")
    batch = int(cfg["data"]["p"]) * int(cfg["data"]["k"])
    return {
        "run": str(run), "epoch": epoch, "output_dir": cfg.get("output_dir"), "backbone": cfg["model"]["backbone"],
        "input": f"{cfg['transforms']['height']}x{cfg['transforms']['width']}",
        "iterations": epoch * per_epoch, "schedule_iterations": int(cfg["train"]["epochs"]) * per_epoch,
        "training_images": epoch * per_epoch * batch,
        "training_minutes": round(sum(minutes[e] for e in range(1, epoch + 1)), 1),
        "machine": machine(), "date": time.strftime("%Y-%m-%d"),
        "R1": result["rank1"], "mAP": result["mAP"], "flip": bool(cfg["train"].get("flip_test")),
        "rerank_R1": rerank["rank1"] if rerank else None, "rerank_mAP": rerank["mAP"] if rerank else None,
        "note": note, "variant": variant,
    }


def load_rows() -> List[Dict[str, Any]]:
    return json.loads(RESULTS.read_text()) if RESULTS.is_file() else []


def store(row: Dict[str, Any]) -> None:
    rows = [r for r in load_rows() if (r["run"], r["epoch"]) != (row["run"], row["epoch"])] + [row]
    rows.sort(key=lambda r: (r["backbone"], r["input"], r.get("variant", ""), r["run"], r["epoch"]))
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(rows, indent=1) + "\n")


def render(rows: List[Dict[str, Any]]) -> str:
    lines = ["| " + " | ".join(COLUMNS) + " |", "| " + " | ".join(["---"] * 3 + ["---:"] * 2 + ["---"] + ["---:"] * 3)
             + " |"]
    for r in rows:
        schedule = ("" if r["iterations"] == r["schedule_iterations"]
                    else f" of {r['schedule_iterations']:,}")
        rerank = (f"{100 * r['rerank_R1']:.2f} / {100 * r['rerank_mAP']:.2f}" if r["rerank_mAP"] is not None
                  else "not run")
        backbone = r["backbone"] + (f" ({r['variant']})" if r.get("variant") else "")
        lines.append(f"| {backbone} | {r['input']} | {r['iterations']:,}{schedule} | {r['training_images']:,} | "
                     f"{r['training_minutes']:.1f} | {r['machine']} | {100 * r['R1']:.2f} | {100 * r['mAP']:.2f} | "
                     f"{rerank} |")
    notes = [f"- {r['backbone']}{' (' + r['variant'] + ')' if r.get('variant') else ''} {r['input']}, "
             f"{r['iterations']:,} iterations: {r['note']}" for r in rows if r["note"]]
    return "\n".join(lines + ([""] + notes if notes else []))


def write_table(files: List[Path]) -> None:
    table = render(load_rows())
    for file in files:
        text = file.read_text()
        start, end = text.find(MARKERS[0]), text.find(MARKERS[1])
        if start < 0 or end < start:
            raise SystemExit(f"{file}: markers {MARKERS[0]} ... {MARKERS[1]} not found")
        file.write_text(text[:start + len(MARKERS[0])] + "\n" + table + "\n" + text[end:])


def main(argv: Optional[List[str]] = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    collect = sub.add_parser("collect", help="store one evaluated point of a run")
    collect.add_argument("--run", type=Path, required=True, help="the run folder (config.yaml, train.log)")
    collect.add_argument("--epoch", type=int, required=True, help="the epoch the evaluated checkpoint ended")
    collect.add_argument("--result", type=Path,
                         help="tools/test.py --json of that checkpoint (default: the evaluation train.log holds)")
    collect.add_argument("--rerank-result", type=Path, help="the same with --rerank")
    collect.add_argument("--note", default="")
    collect.add_argument("--variant", default="", help="how the run differs from its recipe (shown after the backbone)")
    table = sub.add_parser("table", help="write the table between the markers")
    table.add_argument("--into", type=Path, nargs="+", required=True)
    args = parser.parse_args(argv)
    if args.command == "collect":
        rerank = json.loads(args.rerank_result.read_text()) if args.rerank_result else None
        result = (json.loads(args.result.read_text()) if args.result
                  else logged_result((args.run / "train.log").read_text(), args.epoch))
        store(make_row(args.run, args.epoch, result, rerank, args.note, args.variant))
    else:
        write_table(args.into)


if __name__ == "__main__":
    main()
