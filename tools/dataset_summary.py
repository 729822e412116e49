#!/usr/bin/env python
"""Print a dataset's summary and write its counts as JSON: `reid-dataset` once installed (reid/cli/dataset.py).

    python tools/dataset_summary.py --dataset market1501 --root datasets [--split-id N] [--json OUT]
        [--check-images] [key=value ...]
"""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout without installing

from reid.cli.dataset import main, write_json  # noqa: E402,F401 (write_json: kept importable from here)

if __name__ == "__main__":
    sys.exit(main())
