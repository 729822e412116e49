"""Command-line entry points: `reid-train` / tools/train.py and `reid-test` / tools/test.py."""
from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import List, Optional, Sequence

REPO_ROOT = Path(__file__).resolve().parents[1]
DEFAULT_CONFIG = REPO_ROOT / "configs" / "synthetic_quick.yaml"

# Errors a user can fix: reported in one line, without a traceback.
_USER_ERRORS: tuple = ()


def _user_errors() -> tuple:
    global _USER_ERRORS
    if not _USER_ERRORS:
        from .config import ConfigError
        from .engine.builders import MissingDatasetError
        from .engine.checkpoint import CheckpointError

        errors: List[type] = [ConfigError, MissingDatasetError, CheckpointError]
        try:
            from .data.datasets.base import DatasetError

            errors.append(DatasetError)
        except ImportError:  # pragma: no cover - data layer always present in a full install
            pass
        _USER_ERRORS = tuple(errors)
    return _USER_ERRORS


def _fail(message: str, code: int = 2) -> int:
    print(f"error: {message}", file=sys.stderr)
    return code


def train_main(argv: Optional[Sequence[str]] = None) -> int:
    parser = argparse.ArgumentParser(
        prog="reid-train",
        description="Train a re-ID model. With no arguments: the embedded default (synthetic data, CPU).")
    parser.add_argument("--config", help=f"YAML config (default: {DEFAULT_CONFIG.relative_to(REPO_ROOT)})")
    parser.add_argument("--resume", action="store_true", help="continue the run in output_dir from its checkpoint")
    parser.add_argument("--no-progress", action="store_true", help="no progress bars (logs only)")
    parser.add_argument("overrides", nargs="*", help="config overrides key.sub=value, e.g. optim.lr=1e-3")
    args = parser.parse_args(argv)

    from .config import load_config

    try:
        cfg = load_config(args.config or DEFAULT_CONFIG, args.overrides)
        from .engine.trainer import Trainer, TrainingDiverged, TrainingInterrupted

        trainer = Trainer(cfg, resume=args.resume, progress=not args.no_progress)
    except _user_errors() as exc:
        return _fail(str(exc))
    try:
        result = trainer.fit()
    except TrainingInterrupted as exc:
        print(str(exc), file=sys.stderr)
        return 130
    except TrainingDiverged as exc:
        return _fail(str(exc), 1)
    finally:
        trainer.close()
    from .engine import distributed

    if distributed.is_main_process():
        if result is not None:
            print(f"\nFinal evaluation ({cfg['data']['dataset']}):\n{result.table()}")
        # best.pth exists only when an evaluation ran (train.eval_every > 0).
        written = [n for n in ("config.yaml", "checkpoint.pth", "best.pth", "train.log")
                   if (Path(trainer.run_dir) / n).exists()]
        print(f"\nRun folder: {trainer.run_dir}  ({', '.join(written)})")
        print(f"TensorBoard: tensorboard --logdir {trainer.monitor.tensorboard_dir}")
    distributed.cleanup()
    return 0


def test_main(argv: Optional[Sequence[str]] = None) -> int:
    parser = argparse.ArgumentParser(prog="reid-test", description="Evaluate a trained checkpoint.")
    parser.add_argument("--config", required=True, help="the config the checkpoint was trained with")
    parser.add_argument("--checkpoint", required=True)
    parser.add_argument("--rerank", action="store_true", help="k-reciprocal re-ranking (Zhong et al. 2017)")
    parser.add_argument("--k1", type=int, default=20)
    parser.add_argument("--k2", type=int, default=6)
    parser.add_argument("--lambda", dest="lambda_value", type=float, default=0.3)
    parser.add_argument("--multi-query", choices=["mean", "max"], help="pool each query's gt_bbox group")
    parser.add_argument("--distractors", help="folder of distractor images appended to the gallery")
    parser.add_argument("--ap", choices=["mean", "official"], help="AP definition (default: config's test.ap)")
    parser.add_argument("--protocol", choices=["market", "single-shot"])
    parser.add_argument("--high-order", action="store_true", help="concatenate HORDE orders at test time")
    parser.add_argument("--flip", action="store_true", help="average features with the mirrored image")
    parser.add_argument("--visualize", type=int, default=0, metavar="N", help="write rank lists of N queries")
    parser.add_argument("--output-dir", help="where results.json goes (default: <checkpoint dir>/test)")
    parser.add_argument("--json", help="also write the results JSON here")
    parser.add_argument("overrides", nargs="*", help="config overrides key.sub=value")
    args = parser.parse_args(argv)

    from .config import load_config
    from .engine.tester import TestOptions, run_test

    if not os.path.isfile(args.checkpoint):
        return _fail(f"checkpoint not found: {args.checkpoint}")
    try:
        cfg = load_config(args.config, args.overrides)
        options = TestOptions(rerank=args.rerank, k1=args.k1, k2=args.k2, lambda_value=args.lambda_value,
                              multi_query=args.multi_query, distractors=args.distractors, ap=args.ap,
                              protocol=args.protocol, high_order=args.high_order, flip=args.flip,
                              visualize=args.visualize, output_dir=args.output_dir)
        result, out_dir = run_test(cfg, args.checkpoint, options)
    except _user_errors() as exc:
        return _fail(str(exc))
    except ValueError as exc:
        return _fail(str(exc))
    print(result.table())
    if args.json:
        result.save_json(args.json)
    print(f"results written to {out_dir / 'results.json'}")
    return 0


def build_demo_parser() -> argparse.ArgumentParser:
    from .demo import build_parser  # the demo owns its options (reid/demo.py)

    return build_parser()


def demo_main(argv: Optional[Sequence[str]] = None) -> int:
    """`reid-demo`: returns the process exit code (0 ok, 2 bad input)."""
    from .demo import main

    return main(argv)
