"""The demo's output folder: what it may write into, and undoing a failed start.

The demo writes only into a new or empty folder, or one it made before: that holds `.reid-demo.json`, listing the
demo's own files, and nothing else. Any other folder needs `--force`; a folder inside the gallery is always refused
(the rank-list PNGs written there would be indexed as gallery images on the next run).
"""
from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Set

from .demo_cache import FEATURES, MANIFEST
from .utils import atomic_write

MARKER = ".reid-demo.json"


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

    def drop_stale_ranklists(self) -> None:
        """Rank lists of an earlier run's other queries: ours, and no longer on the page."""
        stale = {n for n in self.previous - self.written if n.startswith("ranklist_")}
        for name in stale:
            (self.dir / name).unlink(missing_ok=True)
        if stale:
            self.own -= stale
            self.add()

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
