"""The fair studies of the seed methods on real Market-1501 (BENCHMARKS.md, "Fair studies"; README claims table).

Every arm is one config of `configs/cpu_study/` (all on the recipe `configs/_base_/cpu_study.yaml`: the arms of a
comparison differ only in what the comparison varies), trained for each seed into `runs/study_<arm>_seed<S>` and
evaluated single query right after its training, one job at a time (two jobs on 2 cores run each about
3x slower). A killed run continues exactly from its checkpoint when the command is repeated; finished runs are not
retrained, evaluated runs not re-evaluated. Results go into one JSON file (committed); the claims table is
generated from it, never edited by hand.

    python studies/fair_study.py run --root /path/to/market [--arms sn triplet_soft ...] [--seeds 0 1 2]
    python studies/fair_study.py table [--json benchmarks/results/fair_study.json] [--into BENCHMARKS.md README.md]

`--regime pretrained` runs the same arms and claims on the ImageNet-pretrained recipe
(`configs/_base_/pretrained_study.yaml`, arms in `configs/pretrained_study/`, runs
`runs/pretrained_study_<arm>_seed<S>`, results `benchmarks/results/fair_study_pretrained.json`, claims table
`<!-- claims:pretrained -->`).

Verdict rule of the claims table (3 seeds per arm): the difference of the means (method - baseline) against its
standard error sqrt(s_a^2 / n_a + s_b^2 / n_b): "holds" when the difference is positive and more than 2 standard
errors, "does not hold" when it is negative by more than 2 standard errors, else "no significant difference".
"""
from __future__ import annotations

import argparse
import json
import math
import re
import subprocess
import sys
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "studies"))

from fair_study_arms import (CLAIMS, DEFAULT_ARMS, DML_ARMS, PRETRAINED_ARMS, SINGLE_SEED_ARMS,  # noqa: E402,F401
                             SWEEP_ARMS, SWEEPS, claims_of)
from benchmarks.pretrained_recipes import machine  # noqa: E402  - timings differ by machine: each run names its CPU
from fair_study_regimes import pick_list, regimes_table, teacher_line  # noqa: E402
from fair_study_stats import arm_stats, best_of_sweep, claim_comparison, verdict  # noqa: E402,F401
from reid.config import load_config  # noqa: E402

SPEED_JSON = REPO / "benchmarks" / "results" / "darkrank_speed_pretrained.json"  # studies/darkrank_speed.py
# The two regimes: arm configs, run-folder prefix, results JSON, the marker of the claims table in the documents,
# the default order of the arms and the DarkRank gradient norms (studies/darkrank_gradients.py) of its students.
# The from-scratch regime's claims table is `<!-- fair_study:claims -->`, the pretrained one's
# `<!-- claims:pretrained -->`; an arm runs in a regime when that regime has its config.
REGIMES: Dict[str, Dict[str, Any]] = {
    "from_scratch": {"configs": REPO / "configs" / "cpu_study", "prefix": "study",
                     "json": REPO / "benchmarks" / "results" / "fair_study.json", "claims_marker": "fair_study:claims",
                     "order": DEFAULT_ARMS, "gradients": REPO / "benchmarks" / "results" / "darkrank_gradients.json"},
    "pretrained": {"configs": REPO / "configs" / "pretrained_study", "prefix": "pretrained_study",
                   "json": REPO / "benchmarks" / "results" / "fair_study_pretrained.json",
                   "claims_marker": "claims:pretrained", "order": PRETRAINED_ARMS,
                   "gradients": REPO / "benchmarks" / "results" / "darkrank_gradients_pretrained.json"},
}
CONFIGS = REGIMES["from_scratch"]["configs"]
PREFIX = REGIMES["from_scratch"]["prefix"]
REGIME = "from_scratch"


def use_regime(name: str) -> Dict[str, Any]:
    """Point the driver at one regime's arm configs and run folders (the from-scratch one unless told)."""
    global CONFIGS, PREFIX, REGIME
    CONFIGS, PREFIX, REGIME = REGIMES[name]["configs"], REGIMES[name]["prefix"], name
    return REGIMES[name]


def run_folder(arm: str, seed: int) -> Path:
    return REPO / "runs" / f"{PREFIX}_{arm}_seed{seed}"


def trained(folder: Path) -> bool:
    log = folder / "train.log"
    return log.exists() and "training done" in log.read_text()


def train(arm: str, seed: int, root: str) -> None:
    """Train one arm and seed (resuming exactly from its checkpoint when a previous run was killed)."""
    folder = run_folder(arm, seed)
    command = [sys.executable, "tools/train.py", "--no-progress", "--config", str(CONFIGS / f"{arm}.yaml"),
               f"data.root={root}", f"seed={seed}", f"output_dir={folder}", "train.eval_every=0",
               "train.projector_samples=0"]
    if (folder / "checkpoint.pth").exists():
        command.insert(3, "--resume")
    elif folder.exists():  # killed before its first checkpoint: nothing to keep
        command.insert(3, "--overwrite")
    folder.parent.mkdir(parents=True, exist_ok=True)
    print(f"== train {arm} seed {seed} -> {folder.relative_to(REPO)}", flush=True)
    with open(folder.parent / f"{folder.name}.out", "a") as log:  # not with_suffix: arm names may hold dots
        subprocess.run(command, cwd=REPO, stdout=log, stderr=subprocess.STDOUT, check=True)


def evaluate(arm: str, seed: int, root: str) -> Dict[str, Any]:
    """Single query on the full Market-1501 test split (the recipe's test: no flip), plus inference speed and size."""
    from cpu_quick_eval import evaluate_run  # noqa: WPS433 - torch-heavy, only when evaluating

    out = evaluate_run(run_folder(arm, seed), root, gallery_study=False, single_query_only=True,
                       dml_metrics=arm in DML_ARMS, decoded_cache=True)
    out.update(arm=arm, seed=seed, final_losses=final_losses(run_folder(arm, seed)), machine=machine())
    return out


def final_losses(folder: Path) -> Dict[str, float]:
    """The mean loss terms of the last epoch (train.log), to show which term dominates a run."""
    lines = [line for line in (folder / "train.log").read_text().splitlines() if re.search(r" epoch \d+: ", line)]
    if not lines:
        return {}
    terms = lines[-1].split(": ", 1)[1].split(", ")
    # "softmax 4.21, total 4.21, lr 1.0e-04, epoch time 3:40, run ETA 11:13": the loss terms only
    return {name: float(value) for name, value in (t.rsplit(" ", 1) for t in terms)
            if name not in ("lr", "epoch time", "run ETA")}


def load(path: Path) -> Dict[str, Any]:
    return json.loads(path.read_text()) if path.exists() else {}


def save(results: Dict[str, Any], path: Path) -> None:
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(results, indent=1, sort_keys=True) + "\n")
    tmp.replace(path)


def run_arm(root: str, arm: str, seeds: Sequence[int], path: Path) -> None:
    for seed in seeds:
        key = f"{arm}_seed{seed}"
        if key in load(path):  # evaluated (possibly on another machine: run folders are not kept)
            continue
        teacher = load_config(CONFIGS / f"{arm}.yaml")["distill"]["teacher_checkpoint"]
        if teacher and not trained(run_folder("teacher", 0)):  # students need the teacher's weights here
            train("teacher", 0, root)
        if not trained(run_folder(arm, seed)):
            train(arm, seed, root)
        result = evaluate(arm, seed, root)
        results = load(path)  # read after the evaluation: nothing written meanwhile is lost
        results[key] = result
        save(results, path)
        r = results[key]["single_query"]
        print(f"   {key}: R1 {r['rank1']:.2f} mAP {r['mAP']:.2f}", flush=True)


def run(root: str, arms: Sequence[str], seeds: Sequence[int], path: Path) -> None:
    """Every arm over `seeds` (the teacher: seed 0); sweep arms with seed 0 (every seed where a claim names the arm
    itself) and then the best lambda of each sweep with every seed."""
    for arm in arms:
        if not (CONFIGS / f"{arm}.yaml").exists():
            raise SystemExit(f"no study arm '{arm}': expected {CONFIGS / (arm + '.yaml')}")
    claimed = {c["method"] for c in claims_of(REGIME)}  # a sweep arm a claim names directly needs every seed
    for arm in arms:
        one_seed = arm in SINGLE_SEED_ARMS or (arm in SWEEP_ARMS and arm not in claimed)
        run_arm(root, arm, [0] if one_seed else seeds, path)
    for base in SWEEPS:
        best = best_of_sweep(load(path), base) if any(SWEEP_ARMS.get(a) == base for a in arms) else None
        if best is not None:
            print(f"== best lambda on {base}: {best}", flush=True)
            run_arm(root, best, seeds, path)


def fmt(s: Optional[Dict[str, Any]]) -> str:
    if s is None:
        return "not run"
    spread = f" +- {s['std']:.2f}" if s["n"] > 1 else ""  # one seed: no spread to state
    return f"{s['mean']:.2f}{spread} (n={s['n']})"


def backbone(arm: str) -> str:
    """`efficientnet_lite0, ImageNet, 128x64`: the network an arm trains, as its config resolves it."""
    cfg = load_config(CONFIGS / f"{arm}.yaml")
    weights = "ImageNet" if cfg["model"]["pretrained"] == "imagenet" else "from scratch"
    return f"{cfg['model']['backbone']}, {weights}, {cfg['transforms']['height']}x{cfg['transforms']['width']}"


def describe(arm: str) -> str:
    """`triplet (margin soft, mining batch_hard)`: an arm's loss terms with the options its config gives them, and
    its neck when it has none."""
    cfg = load_config(CONFIGS / f"{arm}.yaml")
    terms = [t["name"] + (f" ({', '.join(f'{k} {v}' for k, v in t.items() if k != 'name')})" if len(t) > 1 else "")
             for t in cfg["loss"]["terms"]]
    return " + ".join(terms) + ("" if cfg["model"]["bn_neck"] else ", no BN neck")


def recipe_arms() -> List[str]:
    """The arms on the regime's own recipe (its network and P x K batch): not the DarkRank teacher or students."""
    arms = [a for a in [*REGIMES["pretrained"]["order"], *SWEEP_ARMS] if (CONFIGS / f"{a}.yaml").exists()]
    recipe = load_config(REPO / "configs" / "_base_" / "pretrained_study.yaml")
    same = lambda c: (c["model"]["backbone"], c["model"]["last_stride"], c["data"]["sampler"]) == (  # noqa: E731
        recipe["model"]["backbone"], recipe["model"]["last_stride"], recipe["data"]["sampler"])
    return [a for a in arms if a not in SINGLE_SEED_ARMS and same(load_config(CONFIGS / f"{a}.yaml"))]


def claims_table(results: Dict[str, Any], with_backbone: bool = False) -> str:
    """One row per claim: single query mAP (or, where a claim names `metric`, that DML metric of both arms, e.g.
    the density paper's Recall@1), the verdict from it, and single query R1 beside it; `with_backbone` adds the
    network of the baseline arm (the pretrained regime's table)."""
    lines = ["| paper | claim | method vs baseline | method mAP (or stated metric) | baseline | difference (2 s.e.) | "
             "R1 method vs baseline | paper's figures | verdict | note |",
             "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |"]
    if with_backbone:
        lines = [lines[0].replace("| method vs baseline |", "| backbone | method vs baseline |"),
                 lines[1] + " --- |"]
    for c in claims_of("pretrained" if with_backbone else "from_scratch"):
        note = c.get("pretrained_note" if with_backbone else "note", "")  # the from-scratch notes fit that table only
        net = ""
        if with_backbone:
            net = (f" {backbone(c['baseline'])} |" if c["baseline"] and (CONFIGS / f"{c['baseline']}.yaml").exists()
                   else " - |")
        if not c["method"]:  # a claim this data cannot test
            lines.append(f"| {c['paper']} | {c['claim']} |{net} - | - | - | - | - | {c['paper_result']} | not "
                         f"testable here | {note} |")
            continue
        cmp = claim_comparison(results, c)
        method, mode, metric, a, b, ra, rb = (cmp[k] for k in ("method", "mode", "metric", "a", "b", "ra", "rb"))
        if cmp["verdict"] is None:
            diff, v = "-", "not run yet"
        else:
            spread = "-" if math.isnan(cmp["se"]) else f"{2 * cmp['se']:.2f}"  # one seed: no standard error yet
            diff, v = f"{cmp['diff']:+.2f} ({spread})", cmp["verdict"]
        r1 = "-" if ra is None or rb is None else f"{ra['mean']:.2f} vs {rb['mean']:.2f}"
        shown = f"`{method or c['method']}`" + ("" if mode == "single_query" else f" ({mode})")
        stated = "" if metric == "mAP" else f"{metric}: "
        lines.append(f"| {c['paper']} | {c['claim']} |{net} {shown} vs `{c['baseline']}` | {stated}{fmt(a)} | "
                     f"{stated}{fmt(b)} | {diff} | {r1} | {c['paper_result']} | {v} | {note} |")
    return "\n".join(lines)


def sweep_table(results: Dict[str, Any]) -> str:
    """The density-adaptivity lambda sweeps (seed 0): single query and the DML metrics, the base arm first."""
    lines = ["| base | lambda | arm | seed-0 R1 | seed-0 mAP | Recall@1 | NMI |", "| --- | ---: | --- | ---: | ---: | "
             "---: | ---: |"]
    for base, sweep in SWEEPS.items():
        for lam, arm in [(0.0, base), *sweep.items()]:
            r = results.get(f"{arm}_seed0")
            if r is None:
                continue
            dml = r.get("dml", {})
            best = " (best)" if arm == best_of_sweep(results, base) else ""
            lines.append(f"| `{base}` | {lam:g} | `{arm}`{best} | {r['single_query']['rank1']:.2f} | "
                         f"{r['single_query']['mAP']:.2f} | {dml.get('recall@1', float('nan')):.2f} | "
                         f"{dml.get('nmi', float('nan')):.2f} |")
    return "\n".join(lines) if len(lines) > 2 else ""


def losses(runs: List[Dict[str, Any]]) -> str:
    first = min(runs, key=lambda r: r["seed"]).get("final_losses") or {}
    return ", ".join(f"{k} {v:.3g}" for k, v in first.items()) or "-"


def arms_table(results: Dict[str, Any]) -> str:
    lines = [f"| arm ({CONFIGS.relative_to(REPO).as_posix()}/) | seeds | single query R1 per seed | "
             "single query mAP per seed | "
             "R1 mean +- std | mAP mean +- std | parameters | inference img/s (median; indicative: timed beside "
             "other jobs) | "
             "loss terms, last epoch "
             "(seed 0) |",
             "| --- | --- | --- | --- | --- | --- | ---: | ---: | --- |"]
    for arm in [*REGIMES[REGIME]["order"], *SWEEP_ARMS]:
        r1, m = arm_stats(results, arm, "rank1"), arm_stats(results, arm, "mAP")
        if m is None:
            continue
        runs = [r for r in results.values() if r["arm"] == arm]
        speed = sorted(r["images_per_s"] for r in runs)[len(runs) // 2]
        std = (lambda s: "-" if s["n"] < 2 else f"{s['std']:.2f}")
        lines.append(f"| `{arm}` | {', '.join(map(str, m['seeds']))} | {', '.join(f'{v:.2f}' for v in r1['values'])} "
                     f"| {', '.join(f'{v:.2f}' for v in m['values'])} | {r1['mean']:.2f} +- {std(r1)} | "
                     f"{m['mean']:.2f} +- {std(m)} | {runs[0]['parameters']:,} | {speed:.0f} | {losses(runs)} |")
    return "\n".join(lines)


def dml_table(results: Dict[str, Any]) -> str:
    """Recall@K and NMI on the test identities (mean +- std over seeds) for the metric-learning arms."""
    keys = ["recall@1", "recall@2", "recall@4", "recall@8", "nmi"]
    lines = ["| arm | seeds | " + " | ".join(keys) + " |", "| --- | --- |" + " ---: |" * len(keys)]
    for arm in [*REGIMES[REGIME]["order"], *SWEEP_ARMS]:
        runs = sorted((r for r in results.values() if r["arm"] == arm and "dml" in r), key=lambda r: r["seed"])
        if not runs:
            continue
        cells = []
        for key in keys:
            v = [r["dml"][key] for r in runs]
            mean = sum(v) / len(v)
            if len(v) == 1:  # one seed (the sweep's other lambdas): no spread to state
                cells.append(f"{mean:.2f}")
                continue
            std = math.sqrt(sum((x - mean) ** 2 for x in v) / (len(v) - 1))
            cells.append(f"{mean:.2f} +- {std:.2f}")
        lines.append(f"| `{arm}` | {', '.join(str(r['seed']) for r in runs)} | " + " | ".join(cells) + " |")
    return "\n".join(lines) if len(lines) > 2 else ""


def high_order_table(results: Dict[str, Any]) -> str:
    """HORDE arms at test: order 1, all orders concatenated, and the concatenation reduced by PCA (mean +- std)."""
    modes = [("single_query", "order 1"), ("high_order", "orders 1-3 concatenated"),
             ("high_order_pca", "concatenated, PCA to 256")]
    lines = ["| arm | seeds | " + " | ".join(f"{label} R1 / mAP" for _, label in modes) + " |",
             "| --- | --- |" + " ---: |" * len(modes)]
    for arm in REGIMES[REGIME]["order"]:
        cells, seeds = [], None
        for mode, _ in modes:
            r1, m = arm_stats(results, arm, "rank1", mode), arm_stats(results, arm, "mAP", mode)
            cells.append("-" if m is None else f"{r1['mean']:.2f} / {m['mean']:.2f} +- {m['std']:.2f}")
            seeds = seeds or (m and m["seeds"])
        if cells[1] != "-" or cells[2] != "-":
            lines.append(f"| `{arm}` | {', '.join(map(str, seeds or []))} | " + " | ".join(cells) + " |")
    return "\n".join(lines) if len(lines) > 2 else ""


def markers(regime: str) -> Dict[str, str]:
    """Table name -> the marker of its block in the documents: `fair_study:NAME` for the from-scratch regime,
    `fair_study_pretrained:NAME` for the pretrained one, whose claims table is `claims:pretrained`."""
    prefix = "fair_study" if regime == "from_scratch" else f"fair_study_{regime}"
    names = ("arms", "dml", "sweep", "high_order", "claims", "darkrank_gradients", "darkrank_speed", "regimes", "pick",
             "darkrank_teacher")
    return {name: f"{prefix}:{name}" for name in names} | {"claims": REGIMES[regime]["claims_marker"]}


def write_into(files: Sequence[Path], tables: Dict[str, str], regime: str = "from_scratch") -> None:
    """Replace each `<!-- MARKER -->` ... `<!-- /MARKER -->` block of the files (`markers(regime)`) with the
    generated table of that name (arms, dml, sweep, high_order, claims, darkrank_gradients), so the documents show
    the JSON's numbers and nothing typed by hand."""
    marked = markers(regime)
    for path in files:
        text = path.read_text()
        for name, table in tables.items():
            begin, end = f"<!-- {marked[name]} -->", f"<!-- /{marked[name]} -->"
            if begin in text:
                head, rest = text.split(begin, 1)
                if end not in rest:
                    raise SystemExit(f"{path}: '{begin}' has no closing '{end}'")
                text = head + begin + "\n" + (table or "(no runs yet)") + "\n" + end + rest.split(end, 1)[1]
        path.write_text(text)


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    p_run = sub.add_parser("run", help="train and evaluate the arms over the seeds (resumable)")
    p_run.add_argument("--root", required=True, help="the folder holding Market-1501-v15.09.15")
    p_run.add_argument("--arms", nargs="+", help="arms (configs/cpu_study/<arm>.yaml, or configs/pretrained_study/ "
                       "with --regime pretrained), in order; default: every arm the regime has a config for")
    p_run.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2], help="seeds of every compared arm")
    p_table = sub.add_parser("table", help="print the per-arm and claims tables (markdown) from the JSON")
    p_table.add_argument("--into", nargs="+", type=Path, default=[],
                         help="also write the tables into these markdown files' <!-- fair_study:NAME --> blocks")
    for p in (p_run, p_table):
        p.add_argument("--regime", choices=sorted(REGIMES), default="from_scratch",
                       help="from_scratch: the small CNN of configs/cpu_study; pretrained: configs/pretrained_study")
        p.add_argument("--json", type=Path, help="results file (merged, one key per run; default: the regime's)")
    args = parser.parse_args(argv)
    regime = use_regime(args.regime)
    path = args.json or regime["json"]
    if args.command == "run":
        arms = args.arms or [a for a in regime["order"] if (CONFIGS / f"{a}.yaml").exists()]
        run(args.root, arms, args.seeds, path)
    else:
        results = load(path)
        tables = {"arms": arms_table(results), "dml": dml_table(results), "sweep": sweep_table(results),
                  "high_order": high_order_table(results),
                  "claims": claims_table(results, with_backbone=args.regime != "from_scratch")}
        if regime["gradients"].exists():  # the DarkRank students' gradient norms (studies/darkrank_gradients.py)
            from darkrank_gradients import markdown  # noqa: WPS433 - torch-heavy, only when the file exists

            tables["darkrank_gradients"] = markdown(json.loads(regime["gradients"].read_text()))
        if args.regime == "pretrained":  # against the from-scratch verdicts, and the ranking a pick follows from
            tables["regimes"] = regimes_table(load(REGIMES["from_scratch"]["json"]), results)
            tables["pick"] = pick_list(results, recipe_arms(), describe)
            tables["darkrank_teacher"] = teacher_line(results)
        if SPEED_JSON.exists() and args.regime == "pretrained":  # the student's speed-up over its teacher
            from darkrank_speed import markdown as speed_markdown  # noqa: WPS433

            tables["darkrank_speed"] = speed_markdown(json.loads(SPEED_JSON.read_text()))
        print("\n\n".join(t for t in tables.values() if t))
        write_into(args.into, tables, args.regime)
    return 0


if __name__ == "__main__":
    sys.exit(main())
