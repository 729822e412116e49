"""Search a folder of person crops with a trained model (tools/demo.py, reid-demo).

Gallery features are cached in the output folder (`reid.demo.cache`: append-only, keyed by the checkpoint's content
and each file's path, size and modification time): a second run extracts only new or changed images, and an
interrupted run keeps every chunk it finished.

What the demo writes, and what it refuses:
- only into a new or empty folder, or one it made before (it holds `.reid-demo.json`, listing the demo's files, and
  nothing else); any other folder needs `--force`. Never a folder inside the gallery (its PNGs would be indexed);
- every check (checkpoint, gallery, queries, output) runs before the folder is made: a failed start leaves nothing.
Rank lists mark items as the evaluation protocol treats them (`reid.evaluation.verification.gallery_roles`).
"""
from __future__ import annotations

import math

import argparse
import hashlib
import os
import re
import sys
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np
import torch

from .cache import FeatureCache
from .output import THUMBS, DemoError, OutputFolder, check_output, copies_of, inside, write_thumbnail
from ..inference.extractor import FeatureExtractor, list_images, search
from ..inference.search_backends import BACKENDS
from ..utils import install_hint

NAME_PATTERN = re.compile(r"^(-1|\d{4})_c(\d+)")  # Market-1501 style names carry person and camera ids
UNKNOWN_ID = -3  # an unparsable gallery name: neither junk (-1) nor anyone's id
UNKNOWN_ROLE = -1  # a gallery item whose relation to the query is unknown (no ids in the names)
METRICS = {False: "squared euclidean", True: "k-reciprocal re-ranked"}
METRIC_TEXT = {False: "squared Euclidean distance of L2-normalised features (0 = identical, 4 = opposite)",
               True: "k-reciprocal re-ranked distance (Zhong et al. 2017)"}


@dataclass
class GalleryIndex:
    paths: List[str]
    features: torch.Tensor
    extracted: int  # images embedded in this run (the rest came from the cache)
    skipped: int  # unreadable images left out
    sizes: List[int] = field(default_factory=list)  # bytes, per path (finding copies of a query)


def checkpoint_key(checkpoint: Path, flip: bool) -> str:
    digest = hashlib.sha256()
    with open(checkpoint, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    digest.update(b"flip" if flip else b"noflip")
    return digest.hexdigest()


def index_gallery(extractor: FeatureExtractor, files: Sequence[Path], cache_folder: Path, key: str,
                  chunk: int = 256, show_progress: bool = False, source: str = "") -> GalleryIndex:
    """Embed every gallery file, reusing cached features of unchanged files; new rows are appended per chunk."""
    from ..data.loader import ImageReadError, read_image
    from ..utils.progress import progress

    cache = FeatureCache(cache_folder, key)
    cached = cache.load()
    live: Dict[str, Tuple[int, int, int]] = {}
    todo: List[Tuple[str, int, int]] = []
    for f in files:
        stat = f.stat()
        name = str(f.resolve())
        hit = cached.get(name)
        if hit is not None and hit[0] == stat.st_size and hit[1] == stat.st_mtime_ns:
            live[name] = hit
        else:
            todo.append((name, stat.st_size, stat.st_mtime_ns))
    skipped = 0
    starts = range(0, len(todo), chunk)
    for start in progress(starts, "indexing gallery", enabled=show_progress):
        arrays, meta = [], []
        for name, size, mtime in todo[start:start + chunk]:
            try:
                arrays.append(read_image(name))
                meta.append((name, size, mtime))
            except ImageReadError as exc:
                skipped += 1
                warnings.warn(f"skipping unreadable gallery image: {exc}")
        if arrays:
            cache.append(meta, extractor.extract(arrays).numpy())  # appended now: an interruption keeps it
            live.update({m[0]: cache.entries[m[0]] for m in meta})
    if cache.compact(live):
        live = {p: cache.entries[p] for p in live}
    if skipped:
        print(f"skipped {skipped} unreadable gallery image(s)")
    if not live:
        raise DemoError(f"no readable images in gallery folder {source or cache_folder}")
    paths = sorted(live)
    features = torch.from_numpy(cache.read([live[p][2] for p in paths]))
    return GalleryIndex(paths, features, extracted=len(todo) - skipped, skipped=skipped,
                        sizes=[live[p][0] for p in paths])


def parse_ids(path: str) -> Optional[Tuple[int, int]]:
    match = NAME_PATTERN.match(Path(path).name)
    return (int(match.group(1)), int(match.group(2))) if match else None


def _safe_name(stem: str, limit: int = 60) -> str:
    # file-system friendly and short: a 250-character query name must not exceed the 255-byte name limit
    return re.sub(r"[^A-Za-z0-9._-]+", "_", stem)[:limit] or "query"


def _threshold(value: Optional[str], rerank: bool) -> Optional[float]:
    if value is None:
        return None
    try:
        number = float(value)
    except ValueError:
        number = None
    if number is not None:
        if not math.isfinite(number) or number < 0:  # a distance: NaN marks nothing, inf or < 0 everything/nothing
            raise DemoError(f"--threshold {value}: expected a finite distance >= 0 (or a verification JSON)")
        return number
    from ..evaluation.verification import load_threshold

    try:
        threshold, metric = load_threshold(value)
    except ValueError as exc:
        raise DemoError(f"--threshold {value}: neither a number nor a usable verification JSON: {exc}") from None
    if metric != METRICS[rerank]:
        raise DemoError(f"--threshold {value} was chosen for {metric} distances, but this search gives "
                        f"{METRICS[rerank]} distances ({'drop' if rerank else 'add'} --rerank to match)")
    return threshold


def _check_backend(backend: str, rerank: bool) -> None:
    # before the output folder exists: a search that cannot run must not leave a half-made folder behind
    from ..inference.search_backends import import_faiss

    if backend not in BACKENDS:
        raise DemoError(f"--backend must be one of {', '.join(BACKENDS)}, got {backend!r}")
    if backend != "exact":
        if rerank:
            raise DemoError(f"--rerank needs every query-gallery distance: use --backend exact, not {backend}")
        try:
            import_faiss()
        except ImportError as exc:
            raise DemoError(f"--backend {backend}: {exc}") from None


def _roles(queries: Sequence[str], gallery_paths: Sequence[str]) -> Tuple[List[Optional[np.ndarray]], bool]:
    """Per query, the protocol role of every gallery item (None when the query's name carries no ids); and whether
    every gallery name carries ids (only then is a top-k accuracy meaningful)."""
    from ..evaluation.verification import gallery_roles

    parsed = [parse_ids(p) for p in gallery_paths]
    g_pids = np.array([p[0] if p else UNKNOWN_ID for p in parsed])
    g_cams = np.array([p[1] if p else UNKNOWN_ID for p in parsed])
    position = {p: i for i, p in enumerate(gallery_paths)}
    out: List[Optional[np.ndarray]] = []
    for q in queries:
        ids = parse_ids(q)
        if ids is None:
            out.append(None)
            continue
        qig = np.array([position.get(str(Path(q).resolve()), -1)])
        out.append(gallery_roles(np.array([ids[0]]), g_pids, np.array([ids[1]]), g_cams, qig)[0])
    return out, all(p is not None for p in parsed)


def run_demo(checkpoint: str, gallery: str, queries: Sequence[str], out: str, topk: int = 10,
             rerank: bool = False, device: str = "auto", flip: bool = False, backend: str = "exact",
             threshold: Optional[str] = None, force: bool = False,
             progress: bool = True) -> Dict[str, List[Tuple[str, float]]]:
    """Rank the gallery for each query; print tables, write a PNG rank list per query and one HTML page.

    `progress`: while the gallery is indexed, a bar on a terminal, an occasional plain line with an ETA in a log
    (`reid.utils.progress`).
    """
    from ..data.loader import ImageReadError, read_image
    from .page import PageEntry, PageRow, write_demo_page
    from ..evaluation.verification import MATCH, NEGATIVE, ROLE_NAMES, SAME_CAMERA, SELF, in_ranking
    from ..visualize import distance_decimals, draw_ranklist, save_image

    ckpt, gallery_dir, out_dir = Path(checkpoint), Path(gallery), Path(out)
    if not ckpt.is_file():
        raise DemoError(f"checkpoint not found: {ckpt}")
    if not gallery_dir.is_dir():
        raise DemoError(f"gallery folder not found: {gallery_dir}")
    if not queries:
        raise DemoError("give at least one --query image")
    if topk < 1:
        raise DemoError(f"--topk must be at least 1, got {topk}")
    query_arrays = []
    for q in queries:
        try:
            query_arrays.append(read_image(q))
        except ImageReadError as exc:
            raise DemoError(f"query {q} is not a readable image: {exc}") from None
    limit = _threshold(threshold, rerank)
    _check_backend(backend, rerank)
    own = check_output(out_dir, gallery_dir, force)
    files = [f for f in list_images(gallery_dir) if not inside(f.resolve(), out_dir.resolve())]
    if not files:
        raise DemoError(f"gallery folder {gallery_dir} holds no images (.jpg, .jpeg, .png, .bmp, .webp)")
    try:
        extractor = FeatureExtractor(ckpt, device=device, flip=flip)
    except (ValueError, RuntimeError, OSError, KeyError) as exc:
        raise DemoError(f"cannot load checkpoint {ckpt}: {exc}") from None

    output = OutputFolder(out_dir, own)  # every check passed: only now is the folder made
    started = time.perf_counter()
    try:
        index = index_gallery(extractor, files, out_dir, checkpoint_key(ckpt, flip),
                              show_progress=progress,
                              source=str(gallery_dir))
    except DemoError:
        output.discard()
        raise
    indexed = time.perf_counter() - started
    print(f"gallery: {len(index.paths)} images ({index.extracted} extracted, "
          f"{len(index.paths) - index.extracted} from cache)")
    qf = extractor.extract(query_arrays)
    roles, all_known = _roles(queries, index.paths)
    # A gallery item that is the query (the same file, or a copy of it) is left out of the ranking, as the protocol
    # does for Market-1501 names; without ids in the names it would otherwise come first at distance 0.
    copies = [copies_of(q, index.paths, index.sizes) for q in queries]
    for qi, found in enumerate(copies):
        if found and roles[qi] is None:
            roles[qi] = np.full(len(index.paths), UNKNOWN_ROLE, dtype=np.int8)
        if found:
            roles[qi][found] = SELF
    ignored = max((int((r >= SAME_CAMERA).sum()) for r in roles if r is not None), default=0)  # left out
    started = time.perf_counter()
    # enough results that the protocol's top-k (ignored items skipped) is known too
    order, dist = search(qf, index.features, topk=min(len(index.paths), topk + ignored), rerank=rerank,
                         backend=backend)
    searched = time.perf_counter() - started
    decimals = distance_decimals(np.asarray(dist)[:, :topk].ravel())

    results: Dict[str, List[Tuple[str, float]]] = {}
    entries, hits1, hitsk, counted = [], 0, 0, 0
    root = gallery_dir.resolve()
    for qi, query in enumerate(queries):
        q_ids, role = parse_ids(query), roles[qi]
        shown = list(order[qi][:topk])
        ranked = [(index.paths[j], float(d)) for j, d in zip(shown, dist[qi][:topk])]
        results[query] = ranked  # the raw search, as shown: items the protocol ignores are marked, not removed
        note = ""
        if role is not None and all_known and (role == MATCH).any():
            ranked_here = in_ranking(role)
            valid = [j for j in order[qi] if ranked_here[j]][:topk]
            counted += 1
            hits1 += int(bool(valid) and role[valid[0]] == MATCH)
            hitsk += int(any(role[j] == MATCH for j in valid))
            first = next(((r, j) for r, j in enumerate(valid, 1) if role[j] == MATCH), None)
            # the strip numbers every item shown; the protocol's rank skips the ignored ones: say both
            if first is None:
                note = f"- first true match: not within the protocol's top {topk}"
            elif first[1] in shown:
                note = (f"- first true match: #{shown.index(first[1]) + 1} below (protocol rank {first[0]}: the "
                        "ignored items before it are not counted)")
            else:
                note = (f"- first true match: protocol rank {first[0]}, after the {topk} items shown (they "
                        "include ignored ones)")
        if copies[qi]:
            note += (" - left out of the ranking as the query itself (the same file or a copy): "
                     + ", ".join(os.path.relpath(index.paths[j], root) for j in copies[qi]))
        print(f"\nquery {query}" + (f" (id {q_ids[0]}, camera {q_ids[1]})" if q_ids else ""))
        print(f"{'rank':>4}  {'distance':>{decimals + 4}}  {'id':>5}  {'cam':>3}  {'protocol':<14}  path")
        rows, labels, kinds = [], [], []
        for r, ((path, d), j) in enumerate(zip(ranked, order[qi]), 1):
            ids = parse_ids(path)
            if role is not None and role[j] == SELF:
                kind, text = "ignored", ROLE_NAMES[SELF]
            elif role is None or ids is None:
                kind, text = "unknown", "id unknown"
            else:
                kind = {MATCH: "match", NEGATIVE: "negative"}.get(int(role[j]), "ignored")
                text = ROLE_NAMES[int(role[j])]
            same = None if limit is None else d < limit
            rel = os.path.relpath(path, root)
            print(f"{r:>4}  {d:>{decimals + 4}.{decimals}f}  {ids[0] if ids else '-':>5}  "
                  f"{ids[1] if ids else '-':>3}  {kind:<14}  {rel}" + ("  same person" if same else ""))
            labels.append(f"id {ids[0]} c{ids[1]}" if ids else Path(path).stem[:14])
            kinds.append(kind)
            rows.append(PageRow(r, rel, os.path.relpath(path, out_dir.resolve()), d,
                                f"{ids[0]} / c{ids[1]}" if ids else "-", kind, text, same,
                                thumb=write_thumbnail(path, out_dir)))
        image = draw_ranklist(query_arrays[qi], [p for p, _ in ranked], [d for _, d in ranked], roles=kinds,
                              labels=labels, query_label="query", decimals=decimals, title=Path(query).name)
        png = f"ranklist_{qi:03d}_{_safe_name(Path(query).stem)}.png"
        save_image(image, out_dir / png)
        output.add(png)
        entries.append(PageEntry(str(query), os.path.relpath(Path(query).resolve(), out_dir.resolve()), png,
                                 f"id {q_ids[0]}, camera {q_ids[1]}" if q_ids else "id unknown", rows, note,
                                 thumb=write_thumbnail(query, out_dir)))
    summary = [("model", f"{ckpt} ({extractor.config['model'].get('backbone')}, {index.features.shape[1]}-d "
                         f"features{', flip' if flip else ''})"),
               ("gallery", f"{gallery_dir}: {len(index.paths)} images ({index.extracted} embedded now in "
                           f"{indexed:.1f} s, {len(index.paths) - index.extracted} from cache, {index.skipped} "
                           "unreadable)"),
               ("search", f"{backend}{' + re-ranking' if rerank else ''}, {searched * 1000:.1f} ms for "
                          f"{len(queries)} quer{'y' if len(queries) == 1 else 'ies'}"),
               ("written", time.strftime("%Y-%m-%d %H:%M:%S"))]
    if counted:
        summary.append(("accuracy", f"rank-1 {hits1}/{counted}, top-{topk} {hitsk}/{counted} (queries with a true "
                                    "match in the gallery; junk and same-camera items skipped as in evaluation)"))
    page = write_demo_page(out_dir / "index.html", f"reid search: {gallery_dir}", summary, METRIC_TEXT[rerank],
                           decimals, entries, limit)
    output.add("index.html", THUMBS)
    output.drop_stale_ranklists({e.thumb for e in entries} | {r.thumb for e in entries for r in e.rows})
    print(f"\nrank lists: {out_dir}  (open {page})")
    return results


def build_parser() -> argparse.ArgumentParser:
    """The options of reid-demo / tools/demo.py (reid.cli.build_demo_parser returns this parser)."""
    parser = argparse.ArgumentParser(prog="reid-demo", description="Search a gallery folder for query images.")
    parser.add_argument("--checkpoint", required=True, help="a checkpoint written by reid-train")
    parser.add_argument("--gallery", required=True, help="folder of gallery images (searched recursively)")
    parser.add_argument("--query", required=True, nargs="+", help="one or more query images")
    parser.add_argument("--topk", type=int, default=10, help="gallery images shown per query")
    parser.add_argument("--rerank", action="store_true", help="k-reciprocal re-ranking of the results")
    parser.add_argument("--out", default="runs/demo", help="output folder (rank lists, index.html, feature cache); "
                        "new, empty, or made by an earlier demo run")
    parser.add_argument("--force", action="store_true", help="write into a non-empty --out the demo did not make")
    parser.add_argument("--backend", choices=BACKENDS, default="exact",
                        help="gallery search: exact (torch), faiss (exact, same neighbours), faiss-ivf or faiss-hnsw "
                             f"(approximate, for very large galleries); faiss needs {install_hint('faiss')}")
    parser.add_argument("--threshold", help="mark matches below this distance as the same person: a number, or the "
                        "verification.json of tools/test.py --verification")
    parser.add_argument("--device", default="auto", help="cpu, cuda, cuda:1 or auto")
    parser.add_argument("--flip", action="store_true", help="average features with the mirrored image")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar while indexing")
    return parser


def main(argv: Optional[Sequence[str]] = None) -> int:
    """reid-demo / tools/demo.py: exit 0, or 2 with a one-line error."""
    args = build_parser().parse_args(argv)
    try:
        run_demo(args.checkpoint, args.gallery, args.query, args.out, topk=args.topk, rerank=args.rerank,
                 device=args.device, flip=args.flip, backend=args.backend, threshold=args.threshold,
                 force=args.force, progress=not args.no_progress)
    except (DemoError, ImportError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0
