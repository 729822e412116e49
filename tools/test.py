#!/usr/bin/env python
"""Evaluate a trained checkpoint.

    python tools/test.py --checkpoint runs/<x>/best.pth     # the config stored in the checkpoint, its test section
    python tools/test.py --config configs/<x>.yaml --checkpoint runs/<x>/best.pth [--rerank] [--multi-query mean]
        [--distractors DIR] [--ap official|mean] [--protocol single-shot] [--high-order] [--visualize N]

Test options live in the config's `test` section; a flag overrides its key only when given (--no-rerank turns a
config's re-ranking off). `--print-config` shows the config the test would use.
"""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout without installing

from reid.cli import test_main  # noqa: E402

if __name__ == "__main__":
    sys.exit(test_main())
