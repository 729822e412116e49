#!/usr/bin/env python
"""Print a dataset's summary (ids / images / cameras per split) and write its counts as JSON.

    python tools/dataset_summary.py --dataset market1501 --root datasets [--split-id N] [--json OUT]
"""
import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--dataset", required=True, help="market1501, cuhk03, cuhk01, synthetic, folder, csv")
    parser.add_argument("--root", default="datasets")
    parser.add_argument("--split-id", type=int, help="CUHK03 classic / CUHK01 split")
    parser.add_argument("--json")
    parser.add_argument("options", nargs="*", help="adapter options key=value, e.g. protocol=classic labeled=false")
    args = parser.parse_args(argv)

    import yaml

    from reid.data import DatasetError, build_dataset

    kwargs = {}
    for option in args.options:
        key, _, value = option.partition("=")
        kwargs[key] = yaml.safe_load(value)
    if args.split_id is not None:
        kwargs["split_id"] = args.split_id
    try:
        ds = build_dataset(args.dataset, args.root, **kwargs)
    except (FileNotFoundError, DatasetError, KeyError, TypeError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(ds.summary())
    if args.json:
        Path(args.json).write_text(json.dumps(ds.counts(), indent=2))
        print(f"counts written to {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
