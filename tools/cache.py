#!/usr/bin/env python
"""List or clean a decoded-image cache folder: `reid-cache` once installed (reid/cli/cache.py).

    python tools/cache.py datasets/.reid_cache [--clean | --max-gb N]
"""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout without installing

from reid.cli.cache import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main())
