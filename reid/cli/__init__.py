"""The installed commands: reid-train, reid-test and reid-demo (commands), reid-evaluate (evaluate), reid-export
(export) and reid-dataset (dataset); `tools/*.py` are thin wrappers over them for a checkout.

The train/test/demo entry points are re-exported here (`from reid.cli import train_main`); the other commands
are imported by module (`reid.cli.evaluate`), so `reid-dataset` does not import torch to print its help.
"""
from __future__ import annotations

from .commands import (DEFAULT_CONFIG, build_demo_parser, build_test_parser, build_train_parser, demo_main,
                       load_test_config, resolve_run_paths, run_origin, test_main, train_main)

__all__ = ["DEFAULT_CONFIG", "build_demo_parser", "build_test_parser", "build_train_parser", "demo_main",
           "load_test_config", "resolve_run_paths", "run_origin", "test_main", "train_main"]
