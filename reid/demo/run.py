"""Search a folder of person crops with a trained model (tools/demo.py, reid-demo).

Gallery features are cached in the output folder (`reid.demo.cache`: append-only, keyed by the checkpoint's content
and each file's path, size and modification time): a second run extracts only new or changed images, and an
interrupted run keeps every chunk it finished.

What the demo writes, and what it refuses:
- only into a new or empty folder, or one it made before (it holds `.reid-demo.json`, listing the demo's files, and
  nothing else); any other folder needs `--force`. Never a folder inside the gallery (its PNGs would be indexed);
- every check (checkpoint, gallery, queries, output) runs before the folder is made: a failed start leaves nothing.
Rank lists mark items as the evaluation protocol treats them (`reid.demo.roles`); each query's table, page entry
and PNG are `reid.demo.report`'s.
"""
from __future__ import annotations

import math

import argparse
import os
import sys
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Set, Tuple

import numpy as np
import torch

from .cache import FeatureCache
from .output import THUMBS, DemoError, OutputFolder, check_output, file_hash, inside
from .report import Accuracy, ReportSetting, protocol_note, report_query
from .roles import NAME_PATTERN, UNKNOWN_ID, UNKNOWN_ROLE, parse_ids  # noqa: F401 (their old home: re-exported)
from ..inference.extractor import FeatureExtractor, list_images, search
from ..evaluation.verification import DISTANCE_NAMES
from ..inference.search_backends import BACKENDS
from ..utils import install_hint

# the distance names of verification reports (a --threshold file must name the distance this search gives)
METRICS = {False: DISTANCE_NAMES["euclidean"], True: "k-reciprocal re-ranked"}
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
    digest = file_hash(checkpoint, "sha256")
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


@dataclass
class DemoInputs:
    """What `check_inputs` found usable, before anything is written."""

    checkpoint: Path
    gallery_dir: Path
    out_dir: Path
    query_arrays: List[np.ndarray]
    limit: Optional[float]  # --threshold as a distance
    own: Set[str]  # the demo's own files already in the output folder
    files: List[Path]  # the gallery images (none inside the output folder)
    extractor: FeatureExtractor


def check_inputs(checkpoint: str, gallery: str, queries: Sequence[str], out: str, topk: int, rerank: bool,
                 device: str, flip: bool, backend: str, threshold: Optional[str], force: bool) -> DemoInputs:
    """Every check of a demo run (checkpoint, gallery, queries, options, output folder), each a DemoError; the
    output folder is not made here, so a run that fails them leaves nothing behind."""
    from ..data.image_io import IMAGE_EXTS
    from ..data.loader import ImageReadError, read_image

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
        raise DemoError(f"gallery folder {gallery_dir} holds no images ({', '.join(IMAGE_EXTS)})")
    try:
        extractor = FeatureExtractor(ckpt, device=device, flip=flip)
    except (ValueError, RuntimeError, OSError, KeyError) as exc:
        raise DemoError(f"cannot load checkpoint {ckpt}: {exc}") from None
    return DemoInputs(ckpt, gallery_dir, out_dir, query_arrays, limit, own, files, extractor)


def _summary(inputs: DemoInputs, index: GalleryIndex, flip: bool, backend: str, rerank: bool, indexed: float,
             searched: float, queries: int, topk: int, accuracy: Accuracy) -> List[Tuple[str, str]]:
    """The page header: the model, the gallery, the search and its timing, and the protocol's accuracy."""
    summary = [("model", f"{inputs.checkpoint} ({inputs.extractor.config['model'].get('backbone')}, "
                         f"{index.features.shape[1]}-d features{', flip' if flip else ''})"),
               ("gallery", f"{inputs.gallery_dir}: {len(index.paths)} images ({index.extracted} embedded now in "
                           f"{indexed:.1f} s, {len(index.paths) - index.extracted} from cache, {index.skipped} "
                           "unreadable)"),
               ("search", f"{backend}{' + re-ranking' if rerank else ''}, {searched * 1000:.1f} ms for "
                          f"{queries} quer{'y' if queries == 1 else 'ies'}"),
               ("written", time.strftime("%Y-%m-%d %H:%M:%S"))]
    if accuracy.counted:
        summary.append(("accuracy", f"rank-1 {accuracy.hits1}/{accuracy.counted}, top-{topk} {accuracy.hitsk}/"
                                    f"{accuracy.counted} (queries with a true match in the gallery; junk and "
                                    "same-camera items skipped as in evaluation)"))
    return summary


def run_demo(checkpoint: str, gallery: str, queries: Sequence[str], out: str, topk: int = 10,
             rerank: bool = False, device: str = "auto", flip: bool = False, backend: str = "exact",
             threshold: Optional[str] = None, force: bool = False,
             progress: bool = True) -> Dict[str, List[Tuple[str, float]]]:
    """Rank the gallery for each query; print tables, write a PNG rank list per query and one HTML page.

    `progress`: while the gallery is indexed, a bar on a terminal, an occasional plain line with an ETA in a log
    (`reid.utils.progress`). Returns each query's shown results, [(gallery path, distance)], nearest first.
    """
    from .page import write_demo_page
    from .roles import query_roles
    from ..visualize import distance_decimals

    inputs = check_inputs(checkpoint, gallery, queries, out, topk, rerank, device, flip, backend, threshold, force)
    out_dir = inputs.out_dir
    output = OutputFolder(out_dir, inputs.own)  # every check passed: only now is the folder made
    started = time.perf_counter()
    try:
        index = index_gallery(inputs.extractor, inputs.files, out_dir, checkpoint_key(inputs.checkpoint, flip),
                              show_progress=progress, source=str(inputs.gallery_dir))
    except DemoError:
        output.discard()
        raise
    indexed = time.perf_counter() - started
    print(f"gallery: {len(index.paths)} images ({index.extracted} extracted, "
          f"{len(index.paths) - index.extracted} from cache)")
    qf = inputs.extractor.extract(inputs.query_arrays)
    known = query_roles(queries, index.paths, index.sizes)
    started = time.perf_counter()
    # enough results that the protocol's top-k (ignored items skipped) is known too
    order, dist = search(qf, index.features, topk=min(len(index.paths), topk + known.ignored), rerank=rerank,
                         backend=backend)
    searched = time.perf_counter() - started
    setting = ReportSetting(out_dir, inputs.gallery_dir.resolve(), topk,
                            distance_decimals(np.asarray(dist)[:, :topk].ravel()), inputs.limit)

    results: Dict[str, List[Tuple[str, float]]] = {}
    entries, accuracy = [], Accuracy()
    for qi, query in enumerate(queries):
        ranked = [(index.paths[j], float(d)) for j, d in zip(order[qi][:topk], dist[qi][:topk])]
        results[query] = ranked  # the raw search, as shown: items the protocol ignores are marked, not removed
        note = protocol_note(known.roles[qi], order[qi], topk, known.all_known, accuracy)
        if known.copies[qi]:
            note += (" - left out of the ranking as the query itself (the same file or a copy): "
                     + ", ".join(os.path.relpath(index.paths[j], setting.gallery_root) for j in known.copies[qi]))
        entries.append(report_query(qi, query, inputs.query_arrays[qi], ranked, order[qi], known.roles[qi], note,
                                    setting, output))
    summary = _summary(inputs, index, flip, backend, rerank, indexed, searched, len(queries), topk, accuracy)
    page = write_demo_page(out_dir / "index.html", f"reid search: {inputs.gallery_dir}", summary,
                           METRIC_TEXT[rerank], setting.decimals, entries, inputs.limit)
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
