#!/usr/bin/env python
"""How large is each loss term of a DarkRank student, seen from the network? (BENCHMARKS.md, "Fair studies":
the DarkRank investigation.)

For a student config of the fair studies, on real DarkRank batches of Market-1501 (the training loader of the run,
seed 0), each weighted loss term is back-propagated alone and the L2 norm of its gradient on the backbone's
parameters recorded: for the student at initialisation (seed 0) and, with --checkpoint, for trained weights. A term
whose gradient is many times the identity loss's steers an Adam step almost alone. Results (mean over batches) go
into a JSON file (the pretrained study's students, configs/pretrained_study/, into a file of their own);
--markdown prints the table from it.

    python studies/darkrank_gradients.py --root /path/to/market --configs configs/cpu_study/student_soft.yaml ...
        [--checkpoint runs/study_student_alone_seed0/checkpoint.pth] [--batches 4]
    python studies/darkrank_gradients.py --markdown
"""
from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path
from typing import Any, Dict, Optional, Sequence

import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from reid.builders import build_dataset_from_config, build_losses_from_config, build_model_from_config  # noqa: E402
from reid.checkpoint import load_model_from_checkpoint  # noqa: E402
from reid.config import load_config  # noqa: E402
from reid.engine.data_setup import TrainingData  # noqa: E402
from reid.engine.distill import Teacher  # noqa: E402
from reid.engine.monitor import Monitor  # noqa: E402
from reid.engine.trainer import train_samples  # noqa: E402

DEFAULT_JSON = REPO / "benchmarks" / "results" / "darkrank_gradients.json"
# the pretrained study's students share the from-scratch students' names: their norms go into a file of their own
PRETRAINED_JSON = REPO / "benchmarks" / "results" / "darkrank_gradients_pretrained.json"


def default_json(configs: Sequence[Path]) -> Path:
    """The pretrained regime's file when every config is one of configs/pretrained_study/, else the from-scratch one
    (a mix of the two regimes is refused: one file would hold both under the same names)."""
    pretrained = {Path(c).resolve().parent == REPO / "configs" / "pretrained_study" for c in configs}
    if len(pretrained) > 1:
        raise SystemExit("--configs mixes configs/pretrained_study/ with other configs: measure each regime apart "
                         "(or give --json)")
    return PRETRAINED_JSON if pretrained == {True} else DEFAULT_JSON


def term_gradient_norms(model: torch.nn.Module, losses: torch.nn.Module, images: torch.Tensor, labels: torch.Tensor,
                        teacher_out: Optional[Dict[str, Any]]) -> Dict[str, float]:
    """{term display name: ||d(weight * term)/d(backbone parameters)||_2} for one batch (model in train mode)."""
    out = model(images, labels, return_dict=True)
    params = [p for p in model.backbone.parameters() if p.requires_grad]
    norms = {}
    terms = losses.terms(out, labels, teacher_out)
    for spec in losses.specs:
        name = spec["display"]
        grads = torch.autograd.grad(spec["weight"] * terms[name], params, retain_graph=True, allow_unused=True)
        norms[name] = float(torch.sqrt(sum((g.double() ** 2).sum() for g in grads if g is not None)))
    return norms


def measure(config: Path, root: str, checkpoint: Optional[Path], batches: int) -> Dict[str, Any]:
    cfg = load_config(config, [f"data.root={root}", "seed=0"])
    with tempfile.TemporaryDirectory() as tmp:
        data = TrainingData(cfg, Path(tmp), torch.device("cpu"), Monitor(Path(tmp), tensorboard=False), False)
        dataset = build_dataset_from_config(cfg)
        loader = data.train_loader(data.filter_train(train_samples(dataset)), 0, 1, False)
        loader.set_epoch(0, 0)
        torch.manual_seed(0)
        if checkpoint is None:
            model = build_model_from_config(cfg, dataset.num_train_pids)
        else:
            model, _ = load_model_from_checkpoint(checkpoint, None, torch.device("cpu"), dataset.num_train_pids)
        teacher = None
        if cfg["distill"]["teacher_checkpoint"]:
            teacher = Teacher(REPO / cfg["distill"]["teacher_config"], REPO / cfg["distill"]["teacher_checkpoint"],
                              None)
        losses = build_losses_from_config(cfg, dataset.num_train_pids, model, teacher)
        model.train()
        sums: Dict[str, float] = {}
        for i, batch in enumerate(loader):
            if i == batches:
                break
            teacher_out = teacher(batch["img"]) if teacher is not None else None
            for name, norm in term_gradient_norms(model, losses, batch["img"], batch["pid"], teacher_out).items():
                sums[name] = sums.get(name, 0.0) + norm / batches
    weights = {s["display"]: s["weight"] for s in losses.specs}
    shown = config.resolve().relative_to(REPO) if REPO in config.resolve().parents else config
    return {"config": str(shown),
            "weights": str(checkpoint) if checkpoint else "initialisation (seed 0)", "batches": batches,
            "term_weights": weights, "gradient_norms": {k: round(v, 4) for k, v in sums.items()}}


def markdown(results: Dict[str, Any]) -> str:
    lines = ["| config | weights | term (weight) | backbone gradient norm | x the identity loss's |",
             "| --- | --- | --- | ---: | ---: |"]
    for r in results.values():
        base = r["gradient_norms"].get("softmax")
        for name, norm in sorted(r["gradient_norms"].items(), key=lambda kv: (kv[0] != "softmax", kv[0])):
            ratio = f"{norm / base:.1f}" if base else "-"
            lines.append(f"| `{Path(r['config']).stem}` | {r['weights']} | {name} ({r['term_weights'][name]:g}) | "
                         f"{norm:.3f} | {ratio} |")
    return "\n".join(lines)


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--root", help="the folder holding Market-1501-v15.09.15")
    parser.add_argument("--configs", nargs="+", type=Path, default=[])
    parser.add_argument("--checkpoint", type=Path, help="trained weights to measure besides the initialisation")
    parser.add_argument("--batches", type=int, default=4)
    parser.add_argument("--json", type=Path, help="results file (default: the regime's, from --configs)")
    parser.add_argument("--markdown", action="store_true", help="print the table from the JSON")
    args = parser.parse_args(argv)
    args.json = args.json or default_json(args.configs)
    results: Dict[str, Any] = json.loads(args.json.read_text()) if args.json.exists() else {}
    if not args.markdown:
        if not args.root or not args.configs:
            parser.error("--root and --configs are needed to measure (or --markdown to print)")
        for config in args.configs:
            for checkpoint in [None] + ([args.checkpoint] if args.checkpoint else []):
                r = measure(config, args.root, checkpoint, args.batches)
                results[f"{Path(r['config']).stem} @ {r['weights']}"] = r
                print(json.dumps(r), flush=True)
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(results, indent=1, sort_keys=True) + "\n")
    print(markdown(results))
    return 0


if __name__ == "__main__":
    sys.exit(main())
