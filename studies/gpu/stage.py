#!/usr/bin/env python
"""Stage Market-1501 for the lent GPU machine in two archives that each fit one call's 64 MiB tree limit.

    python studies/gpu/stage.py pack --root /work/data/market/Market-1501-v15.09.15   # here, once
    python3 studies/gpu/stage.py unpack --archive .gpu_stage/call1/market_part1.tar.gz --dest /root/reid_gpu/data

`pack` writes (default `--dest .gpu_stage`, ignored by git, sent with `run`'s `carry`):
- `call1/market_part1.tar.gz`: bounding_box_train + query (carry `.gpu_stage/call1` with the first command),
- `call2/market_part2.tar.gz`: bounding_box_test WITHOUT the junk images (person id -1, `-1_c...jpg`; the
  evaluation removes them from every ranking, so single-query CMC/mAP do not change), the background /
  distractor images of id 0000 kept (carry `.gpu_stage/call2` with the second command),
each with a `manifest.json` (files and bytes per split) that `unpack` checks after extracting. JPEGs do not
compress, but gzip (level 1) removes the tar headers' and padding's ~0.8 KB per file (about 12 MB per part).
The archive paths are `Market-1501-v15.09.15/<split>/<file>`, so `--dest` becomes a `data.root`.

`unpack` needs the standard library only (no pip on the GPU machine).
"""
from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tarfile
import time
from pathlib import Path
from typing import Dict, List, Sequence, Tuple

RELEASE = "Market-1501-v15.09.15"
PARTS = {  # part -> (subfolder of --dest that one call carries, archive name, splits)
    1: ("call1", "market_part1.tar.gz", ("bounding_box_train", "query")),
    2: ("call2", "market_part2.tar.gz", ("bounding_box_test",)),
}
TREE_LIMIT_MIB = 64.0  # the device tool's limit on what travels with one command (working tree + carried paths)
JUNK = re.compile(r"^-1_")  # Market-1501 names: PPPP_cCsS_FFFFFF_NN.jpg; junk has PPPP = -1


def find_release(root: Path) -> Path:
    """`root` when it holds bounding_box_train, else its Market-1501-v15.09.15 (or *arket*) child."""
    if (root / "bounding_box_train").is_dir():
        return root
    for c in [root / RELEASE] + sorted(p for p in root.glob("*arket*") if p.is_dir()):
        if (c / "bounding_box_train").is_dir():
            return c
    raise SystemExit(f"error: no Market-1501 release under {root} (expected bounding_box_train, query, "
                     "bounding_box_test)")


def split_files(release: Path, split: str, drop_junk: bool) -> Tuple[List[Path], int]:
    """The split's .jpg files (sorted) and how many junk files were left out."""
    folder = release / split
    if not folder.is_dir():
        raise SystemExit(f"error: missing folder {folder}")
    files = sorted(p for p in folder.iterdir() if p.is_file() and p.name.lower().endswith(".jpg"))
    kept = [p for p in files if not (drop_junk and JUNK.match(p.name))]
    if not kept:
        raise SystemExit(f"error: {folder} holds no .jpg images")
    return kept, len(files) - len(kept)


def tree_bytes(repo: Path) -> int:
    """Bytes of what travels besides the carried paths: tracked + untracked-not-ignored files (git's view)."""
    try:
        out = subprocess.run(["git", "ls-files", "-z", "-c", "-o", "--exclude-standard"], cwd=repo,
                             capture_output=True, check=True).stdout
    except (OSError, subprocess.CalledProcessError):
        return 0
    total = 0
    for name in out.decode("utf-8", "replace").split("\0"):
        path = repo / name
        if name and path.is_file() and not path.is_symlink():
            total += path.stat().st_size
    return total


def pack(root: Path, dest: Path, drop_junk: bool = True, limit_mib: float = TREE_LIMIT_MIB,
         repo: Path = Path(__file__).resolve().parents[2], level: int = 1) -> Dict[int, Dict]:
    release = find_release(root)
    tree = tree_bytes(repo)
    report = {}
    for part, (sub, name, splits) in PARTS.items():
        folder = dest / sub
        folder.mkdir(parents=True, exist_ok=True)
        manifest = {"release": RELEASE, "part": part, "splits": {}, "junk_dropped": 0}
        tmp = folder / (name + ".partial")
        start = time.time()
        with tarfile.open(tmp, "w:gz", compresslevel=level) as tar:
            for split in splits:
                files, junk = split_files(release, split, drop_junk and split == "bounding_box_test")
                manifest["junk_dropped"] += junk
                manifest["splits"][split] = {"files": len(files), "bytes": sum(p.stat().st_size for p in files)}
                for p in files:
                    tar.add(str(p), arcname=f"{RELEASE}/{split}/{p.name}", recursive=False)
        os.replace(tmp, folder / name)
        manifest["archive_bytes"] = (folder / name).stat().st_size
        (folder / "manifest.json").write_text(json.dumps(manifest, indent=1) + "\n")
        travels = manifest["archive_bytes"] + tree
        manifest["travels_mib"] = round(travels / 2 ** 20, 2)
        ok = travels <= limit_mib * 2 ** 20
        counts = ", ".join(f"{s} {v['files']} files {v['bytes'] / 1e6:.1f} MB" for s, v in manifest["splits"].items())
        print(f"part {part}: {folder / name}: {manifest['archive_bytes'] / 2 ** 20:.1f} MiB ({counts}; junk left out: "
              f"{manifest['junk_dropped']}) in {time.time() - start:.1f} s; with the {tree / 2 ** 20:.1f} MiB tree "
              f"{travels / 2 ** 20:.1f} MiB travel (limit {limit_mib:g} MiB): {'ok' if ok else 'TOO LARGE'}")
        if not ok:
            raise SystemExit(f"error: part {part} would carry {travels / 2 ** 20:.1f} MiB > {limit_mib:g} MiB")
        report[part] = manifest
    return report


def unpack(archive: Path, dest: Path) -> Dict:
    """Extract one part under `dest` and check it against its manifest (the file beside the archive)."""
    start = time.time()
    dest.mkdir(parents=True, exist_ok=True)
    with tarfile.open(archive, "r:*") as tar:
        if hasattr(tarfile, "data_filter"):
            tar.extractall(dest, filter="data")
        else:  # pragma: no cover - Python without extraction filters
            tar.extractall(dest)
    manifest_path = archive.parent / "manifest.json"
    manifest = json.loads(manifest_path.read_text()) if manifest_path.is_file() else {"splits": {}}
    for split, expected in manifest["splits"].items():
        found = sum(1 for p in (dest / RELEASE / split).iterdir() if p.name.lower().endswith(".jpg"))
        if found != expected["files"]:
            raise SystemExit(f"error: {dest / RELEASE / split} holds {found} images, the manifest {expected['files']}")
    counts = ", ".join(f"{s} {v['files']}" for s, v in manifest["splits"].items())
    print(f"unpacked {archive} into {dest / RELEASE} ({counts}) in {time.time() - start:.1f} s")
    return manifest


def main(argv: Sequence[str] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="cmd", required=True)
    p = sub.add_parser("pack", help="write the two archives (run here)")
    p.add_argument("--root", required=True, help="the Market-1501 release folder (or the folder holding it)")
    p.add_argument("--dest", default=".gpu_stage", help="staging folder, ignored by git (default .gpu_stage)")
    p.add_argument("--keep-junk", action="store_true",
                   help="keep the 3,819 junk gallery images (+8.9 MB; they change nothing in single query, but "
                   "take part in re-ranking's neighbour sets in the standard protocol)")
    p.add_argument("--limit-mib", type=float, default=TREE_LIMIT_MIB)
    u = sub.add_parser("unpack", help="extract one archive to local disk (run on the GPU machine)")
    u.add_argument("--archive", required=True)
    u.add_argument("--dest", required=True, help="data root: the release folder is created inside it")
    args = parser.parse_args(argv)
    if args.cmd == "pack":
        pack(Path(args.root), Path(args.dest), drop_junk=not args.keep_junk, limit_mib=args.limit_mib)
    else:
        unpack(Path(args.archive), Path(args.dest))
    return 0


if __name__ == "__main__":
    sys.exit(main())
