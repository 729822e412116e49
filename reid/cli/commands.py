"""Command-line entry points: `reid-train` / tools/train.py and `reid-test` / tools/test.py."""
from __future__ import annotations

import argparse
import os
import signal
import sys
from pathlib import Path
from typing import Any, Dict, List, Mapping, Optional, Sequence

from ..config.schema import CHOICES  # the test options' values (light: no torch, no yaml)

# A packaged config name (reid/configs in a wheel, configs/ in a checkout): resolved by reid.config.names.
DEFAULT_CONFIG = "synthetic_quick"

# Errors a user can fix: reported in one line, without a traceback.
_USER_ERRORS: tuple = ()


def _user_errors() -> tuple:
    global _USER_ERRORS
    if not _USER_ERRORS:
        from ..config.loading import ConfigError
        from ..builders import MissingDatasetError
        from ..checkpoint import CheckpointError

        from ..utils.atomic import DiskFullError

        errors: List[type] = [ConfigError, MissingDatasetError, CheckpointError, DiskFullError]
        try:
            from ..data.datasets.base import DatasetError
            from ..data.image_io import ImageReadError
            from ..models.weights import WeightsError

            errors += [DatasetError, ImageReadError, WeightsError]
        except ImportError:  # pragma: no cover - data layer always present in a full install
            pass
        _USER_ERRORS = tuple(errors)
    return _USER_ERRORS


def _fail(message: str, code: int = 2) -> int:
    print(f"error: {message}", file=sys.stderr)
    return code


def _interrupted(where: str) -> int:
    """Ctrl-C outside the training loop: one line and exit 130, not a traceback. Further Ctrl-C are ignored from
    here on, so that a second quick one cannot break the clean-up at exit ("Exception ignored in atexit")."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    print(f"interrupted {where}", file=sys.stderr, flush=True)
    return 130


def _blank_config(config: Optional[str]) -> Optional[str]:
    """The refusal of `--config ''` (an unset shell variable): without it the full default job would run here."""
    if config is not None and not config.strip():
        return (f"--config {config!r}: empty; expected a YAML file or a packaged config name (omit --config for "
                f"the default, {DEFAULT_CONFIG})")
    return None


def _print_config(cfg: Mapping[str, Any]) -> None:
    import yaml

    print(yaml.safe_dump(dict(cfg), sort_keys=False), end="")


def build_train_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="reid-train",
        description="Train a re-ID model. With no arguments: the packaged default (synthetic data, CPU).")
    parser.add_argument("--config", help="a YAML file or a packaged config name such as sn/market1501 "
                        f"(default: {DEFAULT_CONFIG})")
    parser.add_argument("--resume", action="store_true", help="continue the run in output_dir from its checkpoint")
    parser.add_argument("--overwrite", action="store_true",
                        help="start afresh in an output_dir that already holds a run (its files are replaced)")
    parser.add_argument("--no-progress", action="store_true",
                        help="no progress bars or progress lines (bars are drawn only when stderr is a terminal; "
                        "redirected output gets a line with an ETA every 30 s)")
    parser.add_argument("--print-config", action="store_true",
                        help="print the resolved config (defaults <- file <- overrides, aliases applied) and exit")
    parser.add_argument("overrides", nargs="*", help="config overrides key.sub=value, e.g. optim.lr=1e-3")
    return parser


def train_main(argv: Optional[Sequence[str]] = None) -> int:
    """`reid-train`: returns the process exit code (0 ok, 1 diverged, 2 bad input, 130 Ctrl-C, 143 SIGTERM)."""
    args = build_train_parser().parse_intermixed_args(argv)

    from ..config.loading import load_config

    _import_config_owners(training=True)

    if _blank_config(args.config):
        return _fail(_blank_config(args.config))
    try:
        cfg = load_config(DEFAULT_CONFIG if args.config is None else args.config, args.overrides)
        if args.print_config:
            _print_config(cfg)
            return 0
        from ..engine.trainer import Trainer, TrainingDiverged, TrainingInterrupted

        trainer = Trainer(cfg, resume=args.resume, progress=not args.no_progress, overwrite=args.overwrite)
    except _user_errors() as exc:
        return _fail(str(exc))
    except KeyboardInterrupt:  # e.g. while the image cache is built: nothing was trained, nothing to resume
        return _interrupted("during set-up, before the first step: nothing was trained (a cache entry being "
                            "built is discarded, finished ones are kept); run the same command again to start")
    try:
        result = trainer.fit()
    except TrainingInterrupted as exc:
        print(str(exc), file=sys.stderr)
        return exc.exit_code  # 130 after Ctrl-C, 143 after SIGTERM
    except TrainingDiverged as exc:
        return _fail(str(exc), 1)
    except _user_errors() as exc:  # e.g. a full disk at a checkpoint: one line, the log has the rest
        return _fail(str(exc))
    finally:
        trainer.close()
    from ..engine import distributed

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


def build_test_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="reid-test", description="Evaluate a trained checkpoint. Test options come from the config's `test` "
        "section (the checkpoint's own config unless --config is given); a flag overrides its key only when given.")
    parser.add_argument("--config", help="a YAML file or packaged config name (default: the config stored in the "
                        "checkpoint)")
    parser.add_argument("--checkpoint", required=True, help="checkpoint.pth or best.pth of a training run")
    bool_flag = argparse.BooleanOptionalAction
    parser.add_argument("--rerank", action=bool_flag, default=None,
                        help="k-reciprocal re-ranking (Zhong et al. 2017) (default: test.rerank)")
    parser.add_argument("--k1", type=int, help="re-ranking k1 (default: test.k1)")
    parser.add_argument("--k2", type=int, help="re-ranking k2 (default: test.k2)")
    parser.add_argument("--lambda", dest="lambda_value", type=float,
                        help="re-ranking weight of the original distance (default: test.lambda_value)")
    parser.add_argument("--multi-query", choices=[c for c in CHOICES["test.multi_query"] if c is not None],
                        help="pool each query's gt_bbox group (default: test.multi_query)")
    parser.add_argument("--distractors", help="folder of distractor images appended to the gallery "
                        "(default: test.dataset_kwargs.distractors)")
    parser.add_argument("--ap", choices=CHOICES["test.ap"], help="AP definition (default: test.ap)")
    parser.add_argument("--protocol", choices=CHOICES["test.protocol"], help="default: test.protocol")
    parser.add_argument("--high-order", action=bool_flag, default=None,
                        help="concatenate the HORDE orders to the embedding at test time (default: test.high_order)")
    parser.add_argument("--flip", action=bool_flag, default=None,
                        help="average features with the mirrored image (default: train.flip_test)")
    parser.add_argument("--visualize", type=int, default=0, metavar="N", help="write rank lists of N queries")
    parser.add_argument("--output-dir", help="where results.json goes (default: <checkpoint dir>/test)")
    parser.add_argument("--json", help="also write the results JSON here (never over an input, a checkpoint or "
                        "a file this tool did not write, unless --force)")
    parser.add_argument("--force", action="store_true",
                        help="let --json replace an existing file that is not a results file (never an input)")
    parser.add_argument("--verification", nargs="?", type=float, const=1e-3, default=None, metavar="FAR",
                        help="also write verification.json/.png (same-id vs different-id distance histograms, ROC, "
                        "TAR at FAR 1e-2/1e-3/1e-4) and the same-person threshold for FAR (default 1e-3)")
    parser.add_argument("--no-progress", action="store_true",
                        help="no progress bars or progress lines (bars only appear when stderr is a terminal)")
    parser.add_argument("--print-config", action="store_true",
                        help="print the config the test would use (flags applied) and exit")
    parser.add_argument("overrides", nargs="*", help="config overrides key.sub=value, e.g. test.metric=cosine")
    return parser


def _import_config_owners(training: bool) -> None:
    """Import the layers that declare the config's registries and sections (reid.registry), so that a bad name is
    refused when the config is read: models and data always, the optimisers and schedules only for training (a
    test reads a checkpoint's `optim.name` without loading training code)."""
    from .. import data, models  # noqa: F401

    if training:
        from ..engine import optim  # noqa: F401


def load_test_config(config: Optional[str], checkpoint: str, overrides: Sequence[str]) -> Dict[str, Any]:
    """`config` resolved with `overrides`, or without it the config the checkpoint stores."""
    from ..config.loading import load_config

    _import_config_owners(training=False)

    if config is not None:
        return load_config(config, overrides)
    from ..checkpoint import CheckpointError, load_checkpoint

    stored = load_checkpoint(checkpoint).get("config")
    if not isinstance(stored, Mapping):
        raise CheckpointError(f"{checkpoint} stores no config (written by an older version?): pass --config")
    stored = resolve_run_paths(stored, checkpoint)
    return load_config(None, overrides, base=stored, base_source=f"the config stored in {checkpoint}")


def run_origin(stored: Mapping[str, Any], checkpoint: str) -> Optional[Path]:
    """The folder the run was started from: the checkpoint's folder less the stored relative `output_dir`
    (`/work/runs/x/best.pth` with output_dir `runs/x` -> `/work`); None when that cannot be told (an absolute
    output_dir, or a checkpoint moved out of its run folder)."""
    out = stored.get("output_dir")
    if not isinstance(out, str) or not out or Path(out).is_absolute():
        return None
    parts = Path(os.path.normpath(out)).parts
    folder = Path(checkpoint).resolve().parent.parts
    if ".." in parts or len(parts) >= len(folder) or folder[-len(parts):] != parts:
        return None
    return Path(*folder[:-len(parts)])


def resolve_run_paths(stored: Mapping[str, Any], checkpoint: str) -> Dict[str, Any]:
    """The stored config with a relative `data.root` / `data.cache_dir` made absolute against the folder the run
    was made in, so `reid-test` from any folder reads the run's data (relative to the current folder it would
    find nothing, or generate the synthetic dataset again there). Overrides still apply on top."""
    data = stored.get("data")
    root = data.get("root") if isinstance(data, Mapping) else None
    if not isinstance(root, str) or not root or Path(root).is_absolute():
        return dict(stored)
    from ..config.loading import ConfigError

    origin = run_origin(stored, checkpoint)
    here = Path(root).resolve()
    if origin is None:
        if here.exists():
            return dict(stored)  # a moved checkpoint, its data found from here: the old behaviour
        raise ConfigError(f"{checkpoint} was trained with the relative data.root '{root}', which is not found from "
                          f"here ({here}), and the folder the run was made in cannot be told from the checkpoint's "
                          "place: run from that folder or pass data.root=/path/to/the/data")
    there = origin / root
    resolved = dict(data)
    resolved["root"] = str(there if there.exists() or not here.exists() else here)
    cache = data.get("cache_dir")
    if isinstance(cache, str) and cache and cache != "off" and not Path(cache).is_absolute():
        resolved["cache_dir"] = str(origin / cache)
    return {**stored, "data": resolved}


def _unwritable_file(path: str) -> Optional[str]:
    """Why `path` cannot be written as a file, or None."""
    target = Path(path)
    if target.is_dir():
        return "is a folder (give a file name)"
    parent = target.parent if str(target.parent) else Path(".")
    probe = parent
    while not probe.exists() and probe != probe.parent:
        probe = probe.parent
    if not probe.is_dir() or not os.access(probe, os.W_OK):
        return f"cannot write into {probe}"
    return None


def test_main(argv: Optional[Sequence[str]] = None) -> int:
    """`reid-test`: returns the process exit code (0 ok, 2 bad input)."""
    args = build_test_parser().parse_intermixed_args(argv)

    from ..engine.tester import TestOptions, resolve_test_config, run_test

    if _blank_config(args.config):
        return _fail(_blank_config(args.config))
    if not os.path.isfile(args.checkpoint):
        return _fail(f"checkpoint not found: {args.checkpoint}")
    if args.json:  # checked before the evaluation, not after it
        from .outputs import is_results_json, output_problem

        problem = output_problem(args.json, "--json", [("--checkpoint", args.checkpoint), ("--config", args.config)],
                                 ours=is_results_json, force=args.force)
        if problem:
            return _fail(problem)
        problem = _unwritable_file(args.json)
        if problem:
            return _fail(f"--json {args.json}: {problem}")
    try:
        cfg = load_test_config(args.config, args.checkpoint, args.overrides)
        options = TestOptions(rerank=args.rerank, k1=args.k1, k2=args.k2, lambda_value=args.lambda_value,
                              multi_query=args.multi_query, distractors=args.distractors, ap=args.ap,
                              protocol=args.protocol, high_order=args.high_order, flip=args.flip,
                              visualize=args.visualize, output_dir=args.output_dir,
                              verification=args.verification)
        if args.print_config:
            _print_config(resolve_test_config(cfg, options))
            return 0
        result, out_dir = run_test(cfg, args.checkpoint, options, progress=not args.no_progress)
    except KeyboardInterrupt:
        return _interrupted("before the results were written (the checkpoint is untouched)")
    except _user_errors() as exc:
        return _fail(str(exc))
    except ValueError as exc:
        return _fail(str(exc))
    print(result.table())
    if args.json:
        result.save_json(args.json)
    print(f"results written to {out_dir / 'results.json'}")
    ranklists = sorted((out_dir / "ranklists").glob("query_*.png")) if args.visualize else []
    if ranklists:  # the PNGs are not shown anywhere: say where they went
        print(f"rank lists: {len(ranklists)} PNG(s) in {out_dir / 'ranklists'}")
    if args.verification is not None:
        print(f"verification: {out_dir / 'verification.json'} and {out_dir / 'verification.png'}")
    return 0


def build_demo_parser() -> argparse.ArgumentParser:
    from ..demo.run import build_parser  # the demo owns its options (reid/demo/run.py)

    return build_parser()


def demo_main(argv: Optional[Sequence[str]] = None) -> int:
    """`reid-demo`: returns the process exit code (0 ok, 2 bad input)."""
    from ..demo.run import main

    return main(argv)
