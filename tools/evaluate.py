#!/usr/bin/env python
"""Evaluate features computed elsewhere: `reid-evaluate` once installed (the code is reid/cli/evaluate.py).

    python tools/evaluate.py --query Q.npz --gallery G.npz [--distractors D.npz] [--rerank] [--json OUT]
"""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout without installing

from reid.cli.evaluate import InputError, check_output, load, main  # noqa: E402,F401 (kept importable from here)

if __name__ == "__main__":
    sys.exit(main())
