"""The demo's output folder: what it may write into, and undoing a failed start.

The demo writes only into a new or empty folder, or one it made before: that holds `.reid-demo.json`, listing the
demo's own files, and nothing else. Any other folder needs `--force`; a folder inside the gallery is always refused
(the rank-list PNGs written there would be indexed as gallery images on the next run).
"""
from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any, List, Sequence, Set, Union

from .cache import FEATURES, MANIFEST
from ..utils import atomic_path, atomic_write

MARKER = ".reid-demo.json"
THUMBS = "thumbs"  # the page's thumbnails, copied so that the folder can be moved or shared as it is
THUMB_HEIGHT = 256  # twice the page's 128 px (sharp on dense screens); a few kB each as JPEG


def file_hash(path: Union[str, Path], algorithm: str = "sha1") -> Any:
    """The `hashlib` hash of a file's bytes, read 1 MiB at a time (a checkpoint or image is never held whole)."""
    digest = hashlib.new(algorithm)
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest


def file_digest(path: str) -> str:
    """The hex SHA-1 of a file's bytes (finding byte copies of a query)."""
    return file_hash(path).hexdigest()


def copies_of(query: str, gallery_paths: Sequence[str], gallery_sizes: Sequence[int]) -> List[int]:
    """Gallery items that are the query: the same file, or the same bytes under another name (a copy). Only files
    of the query's size are read, so a large gallery costs one stat per file, not a hash."""
    resolved = str(Path(query).resolve())
    size = os.path.getsize(query)
    found, digest = [], None
    for i, (path, length) in enumerate(zip(gallery_paths, gallery_sizes)):
        if path == resolved:
            found.append(i)
        elif length == size:
            digest = digest or file_digest(query)
            try:
                same = file_digest(path) == digest
            except OSError:  # removed since it was indexed
                same = False
            if same:
                found.append(i)
    return found


def write_thumbnail(image_path: str, out_dir: Path) -> str:
    """A small JPEG of `image_path` under `out_dir/thumbs` (made once per file version: the name hashes the path,
    size and time), returned relative to `out_dir` for the page."""
    import cv2

    from ..data.image_io import read_image

    stat = os.stat(image_path)
    key = hashlib.sha1(f"{Path(image_path).resolve()}|{stat.st_size}|{stat.st_mtime_ns}".encode()).hexdigest()[:24]
    target = out_dir / THUMBS / f"{key}.jpg"
    if not target.is_file():
        rgb = read_image(image_path)
        if rgb.shape[0] > THUMB_HEIGHT:
            width = max(1, round(rgb.shape[1] * THUMB_HEIGHT / rgb.shape[0]))
            rgb = cv2.resize(rgb, (width, THUMB_HEIGHT), interpolation=cv2.INTER_AREA)
        with atomic_path(target, keep_extension=True) as tmp:
            if not cv2.imwrite(str(tmp), cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, 85]):
                raise OSError(f"cannot write thumbnail {target}")
    return f"{THUMBS}/{target.name}"


class DemoError(ValueError):
    """Bad demo input: missing gallery, unreadable query, unwritable or foreign output, missing checkpoint."""


def inside(child: Path, parent: Path) -> bool:
    return child == parent or parent in child.parents


def check_output(out: Path, gallery: Path, force: bool) -> Set[str]:
    """Refuse an output folder the demo must not write into; returns the names of the demo's files already there."""
    resolved = out.resolve()
    if inside(resolved, gallery.resolve()):
        raise DemoError(f"--out {out} is inside the gallery folder {gallery}: the demo's rank-list images would be "
                        "indexed as gallery images on the next run; choose an output folder outside the gallery")
    if resolved.exists():
        if not resolved.is_dir():
            raise DemoError(f"output folder {out} is not writable: it is a file")
        present = {p.name for p in resolved.iterdir()}
        own: Set[str] = set()
        if MARKER in present:
            try:
                own = set(json.loads((resolved / MARKER).read_text(encoding="utf-8"))["files"])
            except (OSError, ValueError, KeyError, TypeError) as exc:
                raise DemoError(f"output folder {out}: unreadable demo marker {MARKER} ({exc}); "
                                "pass --force to write into it anyway") from None
        foreign = sorted(present - own - {MARKER})
        if foreign and not force:
            why = ("holds files the demo did not write" if MARKER in present
                   else f"is not empty and was not made by the demo (no {MARKER} marker)")
            raise DemoError(f"output folder {out} {why}: {', '.join(foreign[:5])}"
                            f"{' ...' if len(foreign) > 5 else ''}; choose a new or empty folder, or pass --force "
                            "to write into it (index.html, ranklist_*.png and gallery_cache.* are overwritten)")
        target = resolved
    else:
        own = set()
        target = resolved.parent
        while not target.exists():
            target = target.parent
        if not target.is_dir():
            raise DemoError(f"output folder {out} is not writable: {target} is a file")
    if not os.access(target, os.W_OK | os.X_OK):
        raise DemoError(f"output folder {out} is not writable (no write permission on {target})")
    return own


class OutputFolder:
    """The output folder: remembers what this run wrote (the marker lists it) and can undo a failed start."""

    def __init__(self, out: Path, own: Set[str]) -> None:
        self.dir, self.own = out, set(own)
        self.created = [p for p in [out, *out.parents] if not p.exists()]
        try:
            out.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise DemoError(f"output folder {out} is not writable: {exc}") from None
        self.previous = set(own)
        self.written: Set[str] = set()
        self.add(MANIFEST, FEATURES)

    def add(self, *names: str) -> None:
        self.own.update(names)
        self.written.update(names)
        with atomic_write(self.dir / MARKER, fsync=False) as handle:  # rewritten per file: no fsync each time
            handle.write(json.dumps({"tool": "reid-demo", "files": sorted(self.own)}, indent=1))

    def drop_stale_ranklists(self, thumbs: Set[str] = frozenset()) -> None:
        """Rank lists of an earlier run's other queries: ours, and no longer on the page; and thumbnails that the
        page no longer shows (`thumbs`: those it shows, as `thumbs/<name>`)."""
        stale = {n for n in self.previous - self.written if n.startswith("ranklist_")}
        for name in stale:
            (self.dir / name).unlink(missing_ok=True)
        if stale:
            self.own -= stale
            self.add()
        if (self.dir / THUMBS).is_dir():
            for path in (self.dir / THUMBS).glob("*.jpg"):
                if f"{THUMBS}/{path.name}" not in thumbs:
                    path.unlink(missing_ok=True)

    def discard(self) -> None:
        """Undo a start that failed before any result: this run's files, then the folders it made."""
        if not self.created:
            return
        for name in self.written | {MARKER}:
            (self.dir / name).unlink(missing_ok=True)
        for folder in self.created:
            try:
                folder.rmdir()
            except OSError:
                break
