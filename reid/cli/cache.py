"""reid-cache: list or clean a decoded-image cache folder (`<data.root>/.reid_cache` unless data.cache_dir says).

    reid-cache FOLDER                 one line per entry, least recently used first, and the total
    reid-cache FOLDER --max-gb N      remove least recently used entries until the folder holds at most N GB
    reid-cache FOLDER --clean         remove every entry (a run rebuilds what it needs)

Only the cache's own files (`<key>.npy`, `<key>.bad.json`, their temporaries) are listed or removed: the folder
may hold other files of the user's.
"""
from __future__ import annotations

import argparse
import math
import sys
import time
from pathlib import Path
from typing import List, Optional


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="reid-cache", description="List or clean a decoded-image cache folder.")
    parser.add_argument("folder", help="the cache folder, e.g. datasets/.reid_cache")
    action = parser.add_mutually_exclusive_group()
    action.add_argument("--clean", action="store_true", help="remove every cache entry")
    action.add_argument("--max-gb", type=float, help="evict least recently used entries down to this size")
    return parser


def _fail(message: str) -> int:
    print(f"error: {message}", file=sys.stderr)
    return 2


def main(argv: Optional[List[str]] = None) -> int:
    args = build_parser().parse_args(argv)
    from ..data import cache_folder

    folder = Path(args.folder)
    if not folder.is_dir():
        what = "is a file" if folder.exists() else "does not exist"
        return _fail(f"cache folder {folder} {what}; expected the folder of a decoded-image cache "
                     "(<data.root>/.reid_cache by default)")
    if args.max_gb is not None and not (math.isfinite(args.max_gb) and args.max_gb >= 0):
        return _fail(f"--max-gb {args.max_gb}: expected a finite number >= 0")
    present = cache_folder.entries(folder)
    if args.clean or args.max_gb is not None:
        keep = 0.0 if args.clean else args.max_gb * 1e9
        total, removed = sum(e.nbytes for e in present), []
        for entry in present:  # least recently used first
            if total <= keep:
                break
            cache_folder.remove(entry)
            removed.append(entry)
            total -= entry.nbytes
        freed = sum(e.nbytes for e in removed)
        print(f"{folder}: removed {len(removed)} entr{'y' if len(removed) == 1 else 'ies'} ({freed / 1e6:.1f} MB); "
              f"{len(present) - len(removed)} left ({total / 1e6:.1f} MB)")
        return 0
    for entry in present:
        used = time.strftime("%Y-%m-%d %H:%M", time.localtime(entry.last_used))
        print(f"{entry.key}  {entry.nbytes / 1e6:10.1f} MB  last used {used}  "
              f"{', '.join(p.name for p in entry.files)}")
    print(f"{folder}: {len(present)} entr{'y' if len(present) == 1 else 'ies'}, "
          f"{sum(e.nbytes for e in present) / 1e6:.1f} MB")
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
