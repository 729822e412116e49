"""Print a dataset's summary (ids / images / cameras per split) and write its counts as JSON
(`reid-dataset`; tools/dataset_summary.py in a checkout).

    reid-dataset --dataset market1501 --root datasets [--split-id N] [--json OUT]
        [--check-images] [key=value ...]
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any, Dict, Optional, Sequence

from ..utils import atomic_write


def main(argv: Optional[Sequence[str]] = None) -> int:
    """`reid-dataset`: exit 0, or 2 with a one-line error."""
    parser = argparse.ArgumentParser(prog="reid-dataset", description=__doc__.split("\n\n")[0])
    parser.add_argument("--dataset", required=True, help="market1501, cuhk03, cuhk01, synthetic, folder, csv")
    parser.add_argument("--root", default="datasets")
    parser.add_argument("--split-id", type=int, help="CUHK03 classic / CUHK01 split")
    parser.add_argument("--json", help="write the counts here (a file path)")
    parser.add_argument("--check-images", action="store_true",
                        help="also check every image file (exists, not empty, not truncated) without decoding")
    parser.add_argument("options", nargs="*", help="adapter options key=value, e.g. protocol=classic labeled=false")
    args = parser.parse_args(argv)

    import yaml

    from ..data import DatasetError, build_dataset
    from ..data.image_io import check_images, describe_bad

    kwargs = {}
    for option in args.options:
        key, sep, value = option.partition("=")
        if not sep or not key:
            return _fail(f"option {option!r} must look like key=value (e.g. protocol=classic)")
        try:
            kwargs[key] = yaml.safe_load(value)
        except yaml.YAMLError:
            kwargs[key] = value
    if args.split_id is not None:
        kwargs["split_id"] = args.split_id
    if args.json and Path(args.json).is_dir():  # refused before the (possibly slow) dataset scan
        return _fail(f"--json {args.json} is a folder; give a file path such as {Path(args.json) / 'counts.json'}")
    try:
        ds = build_dataset(args.dataset, args.root, **kwargs)
    except KeyError as exc:  # unknown dataset name: the registry's message lists the known ones
        return _fail(exc.args[0] if exc.args else str(exc))
    except (FileNotFoundError, DatasetError, TypeError) as exc:
        return _fail(str(exc))
    print(ds.summary())
    if args.check_images:
        samples = [s for split in (ds.train, ds.query, ds.gallery) for s in split]
        bad = check_images(sorted({s.path for s in samples}))
        if bad:
            return _fail(f"{len(bad)} unreadable image(s): {describe_bad(bad)}")
        print(f"images: all {len({s.path for s in samples})} complete (every file decoded, JPEGs in strict mode)")
    if args.json:
        try:
            write_json(Path(args.json), ds.counts())
        except OSError as exc:
            return _fail(f"cannot write --json {args.json}: {exc.strerror or exc}")
        print(f"counts written to {args.json}")
    return 0


def _fail(message: str) -> int:
    print(f"error: {message}", file=sys.stderr)
    return 2


def write_json(path: Path, data: Dict[str, Any]) -> None:
    """Write via a temporary sibling and a rename (nothing left behind when the write fails)."""
    with atomic_write(path) as handle:
        json.dump(data, handle, indent=2)

