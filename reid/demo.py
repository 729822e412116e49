"""Search a folder of person crops with a trained model (tools/demo.py).

The gallery's features are cached next to the output, keyed by the checkpoint's content and by each file's path,
size and modification time: a second run extracts only new or changed images. The cache is rewritten atomically
after every chunk, so an interrupted run keeps what it had extracted.
"""
from __future__ import annotations

import hashlib
import os
import re
import tempfile
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np
import torch

from .inference import FeatureExtractor, list_images, search

NAME_PATTERN = re.compile(r"^(-1|\d{4})_c(\d+)")  # Market-1501 style names carry person and camera ids
CACHE_NAME = "gallery_cache.npz"


class DemoError(ValueError):
    """Bad demo input: missing gallery, unreadable query, unwritable output, missing checkpoint."""


@dataclass
class GalleryIndex:
    paths: List[str]
    features: torch.Tensor
    extracted: int  # images embedded in this run (the rest came from the cache)
    skipped: int  # unreadable images left out


def checkpoint_key(checkpoint: Path, flip: bool) -> str:
    digest = hashlib.sha256()
    with open(checkpoint, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    digest.update(b"flip" if flip else b"noflip")
    return digest.hexdigest()


def _load_cache(path: Path, key: str) -> Dict[str, Tuple[int, int, np.ndarray]]:
    if not path.is_file():
        return {}
    try:
        with np.load(path, allow_pickle=False) as data:
            if str(data["key"]) != key:
                print(f"cache {path} was built with another checkpoint: not reused")
                return {}
            return {str(p): (int(s), int(m), f) for p, s, m, f in
                    zip(data["paths"], data["sizes"], data["mtimes"], data["features"])}
    except Exception as exc:  # noqa: BLE001 - a damaged cache is rebuilt, never trusted
        warnings.warn(f"ignoring unreadable cache {path}: {exc}")
        return {}


def _save_cache(path: Path, key: str, entries: Dict[str, Tuple[int, int, np.ndarray]]) -> None:
    paths = sorted(entries)
    dim = len(next(iter(entries.values()))[2]) if entries else 0
    fd, tmp = tempfile.mkstemp(prefix=".cache", suffix=".npz", dir=path.parent)
    os.close(fd)
    np.savez(tmp, key=np.array(key), paths=np.array(paths, dtype=str),
             sizes=np.array([entries[p][0] for p in paths], dtype=np.int64),
             mtimes=np.array([entries[p][1] for p in paths], dtype=np.int64),
             features=np.stack([entries[p][2] for p in paths]) if paths else np.zeros((0, dim), np.float32))
    os.replace(tmp, path)


def index_gallery(extractor: FeatureExtractor, gallery_dir: Path, cache_path: Path, key: str,
                  chunk: int = 256) -> GalleryIndex:
    """Embed every image under `gallery_dir`, reusing cached features of unchanged files."""
    from .data.loader import ImageReadError, read_image

    files = list_images(gallery_dir)
    if not files:
        raise DemoError(f"gallery folder {gallery_dir} holds no images (.jpg, .jpeg, .png, .bmp, .webp)")
    cache = _load_cache(cache_path, key)
    current: Dict[str, Tuple[int, int, np.ndarray]] = {}
    todo: List[Tuple[str, int, int]] = []
    for f in files:
        stat = f.stat()
        name = str(f.resolve())
        hit = cache.get(name)
        if hit is not None and hit[0] == stat.st_size and hit[1] == stat.st_mtime_ns:
            current[name] = hit
        else:
            todo.append((name, stat.st_size, stat.st_mtime_ns))
    skipped = 0
    for start in range(0, len(todo), chunk):
        arrays, meta = [], []
        for name, size, mtime in todo[start:start + chunk]:
            try:
                arrays.append(read_image(name))
                meta.append((name, size, mtime))
            except ImageReadError as exc:
                skipped += 1
                warnings.warn(f"skipping unreadable gallery image: {exc}")
        if arrays:
            feats = extractor.extract(arrays).numpy()
            for (name, size, mtime), feat in zip(meta, feats):
                current[name] = (size, mtime, feat)
        _save_cache(cache_path, key, current)  # after every chunk: an interruption keeps the work done
    if not todo:
        _save_cache(cache_path, key, current)  # drops entries of files that disappeared
    if skipped:
        print(f"skipped {skipped} unreadable gallery image(s)")
    if not current:
        raise DemoError(f"no readable images in gallery folder {gallery_dir}")
    paths = sorted(current)
    features = torch.from_numpy(np.stack([current[p][2] for p in paths]))
    return GalleryIndex(paths, features, extracted=len(todo) - skipped, skipped=skipped)


def parse_ids(path: str) -> Optional[Tuple[int, int]]:
    match = NAME_PATTERN.match(Path(path).name)
    return (int(match.group(1)), int(match.group(2))) if match else None


def _check_output(out: Path) -> None:
    try:
        out.mkdir(parents=True, exist_ok=True)
        probe = tempfile.NamedTemporaryFile(dir=out, prefix=".write-test", delete=True)
        probe.close()
    except OSError as exc:
        raise DemoError(f"output folder {out} is not writable: {exc}") from None


def run_demo(checkpoint: str, gallery: str, queries: Sequence[str], out: str, topk: int = 10,
             rerank: bool = False, device: str = "auto", flip: bool = False) -> Dict[str, List[Tuple[str, float]]]:
    """Rank the gallery for each query; print tables, write a PNG rank list per query and one HTML page."""
    from .data.loader import ImageReadError, read_image
    from .visualize import draw_ranklist, save_image, write_html_report

    ckpt, gallery_dir, out_dir = Path(checkpoint), Path(gallery), Path(out)
    if not ckpt.is_file():
        raise DemoError(f"checkpoint not found: {ckpt}")
    if not gallery_dir.is_dir():
        raise DemoError(f"gallery folder not found: {gallery_dir}")
    if not queries:
        raise DemoError("give at least one --query image")
    query_arrays = []
    for q in queries:
        try:
            query_arrays.append(read_image(q))
        except ImageReadError as exc:
            raise DemoError(f"query {q} is not a readable image: {exc}") from None
    _check_output(out_dir)

    extractor = FeatureExtractor(ckpt, device=device, flip=flip)
    index = index_gallery(extractor, gallery_dir, out_dir / CACHE_NAME, checkpoint_key(ckpt, flip))
    print(f"gallery: {len(index.paths)} images ({index.extracted} extracted, "
          f"{len(index.paths) - index.extracted} from cache)")
    qf = extractor.extract(query_arrays)
    order, dist = search(qf, index.features, topk=topk, rerank=rerank)

    results: Dict[str, List[Tuple[str, float]]] = {}
    entries = []
    root = gallery_dir.resolve()
    for qi, query in enumerate(queries):
        q_ids = parse_ids(query)
        ranked = [(index.paths[j], float(d)) for j, d in zip(order[qi], dist[qi])]
        results[query] = ranked
        print(f"\nquery {query}" + (f" (id {q_ids[0]}, camera {q_ids[1]})" if q_ids else ""))
        print(f"{'rank':>4}  {'distance':>9}  {'id':>5}  {'cam':>3}  path")
        rows, labels, matches = [], [], []
        for r, (path, d) in enumerate(ranked, 1):
            ids = parse_ids(path)
            rel = os.path.relpath(path, root)
            print(f"{r:>4}  {d:>9.4f}  {ids[0] if ids else '-':>5}  {ids[1] if ids else '-':>3}  {rel}")
            labels.append(f"id {ids[0]} c{ids[1]}" if ids else Path(path).stem[:14])
            matches.append(None if (ids is None or q_ids is None) else ids[0] == q_ids[0])
            rows.append((r, rel, d, f"{ids[0]} / c{ids[1]}" if ids else "-"))
        image = draw_ranklist(query_arrays[qi], [p for p, _ in ranked], [d for _, d in ranked], matches=matches,
                              labels=labels, query_label=Path(query).stem)
        png = save_image(image, out_dir / f"ranklist_{qi:03d}_{Path(query).stem}.png")
        entries.append((str(query), png.name, rows))
    page = write_html_report(entries, out_dir / "index.html", title=f"reid search: {gallery_dir}")
    print(f"\nrank lists: {out_dir}  (open {page})")
    return results
