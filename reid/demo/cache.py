"""The demo's gallery feature cache: append-only, so indexing N images costs O(N) writes, not O(N^2).

Two files in the output folder:
- `gallery_cache.jsonl`: a header line {"format", "version", "key", "dim"}, then one JSON line [path, size,
  mtime_ns] per feature row, in row order (JSON, so any character in a path survives);
- `gallery_cache.f32`: the rows, `dim` float32 values each, appended chunk by chunk.

Features are appended before their manifest lines, and on load only rows present in both files count (a torn tail
of either is cut off), so an interrupted run keeps every chunk it finished. A changed or deleted image leaves a dead
row behind; when dead rows outnumber live ones the cache is rewritten once with the live rows only (each rewrite
is paid for by as many appends: still linear overall).
"""
from __future__ import annotations

import json
import warnings
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np

from ..utils import atomic_path

MANIFEST, FEATURES = "gallery_cache.jsonl", "gallery_cache.f32"
FORMAT, VERSION = "reid-demo-gallery-cache", 1
Entry = Tuple[int, int, int]  # size, mtime_ns, row


class FeatureCache:
    def __init__(self, folder: Path, key: str) -> None:
        self.manifest, self.features = Path(folder) / MANIFEST, Path(folder) / FEATURES
        self.key = key
        self.dim: Optional[int] = None
        self.rows = 0
        self.entries: Dict[str, Entry] = {}

    def load(self) -> Dict[str, Entry]:
        """Read the cache (path -> (size, mtime_ns, row)); a cache of another checkpoint or a damaged one is reset."""
        if not self.manifest.is_file():
            self._reset()
            return {}
        try:
            with open(self.manifest, "rb") as handle:
                header = json.loads(handle.readline())
                if header.get("format") != FORMAT or header.get("version") != VERSION:
                    raise ValueError(f"not a version-{VERSION} demo cache")
                if header.get("key") != self.key:
                    print(f"cache {self.manifest} was built with another checkpoint: not reused")
                    self._reset()
                    return {}
                self.dim = int(header["dim"])
                lines: List[Tuple[str, int, int]] = []
                end = handle.tell()
                for raw in handle:
                    if not raw.endswith(b"\n"):
                        break  # torn last line of an interrupted append
                    path, size, mtime = json.loads(raw)
                    lines.append((str(path), int(size), int(mtime)))
                    end = handle.tell()
        except (OSError, ValueError, KeyError, TypeError) as exc:
            warnings.warn(f"ignoring unreadable cache {self.manifest}: {exc}")
            self._reset()
            return {}
        row_bytes = 4 * self.dim
        stored = self.features.stat().st_size // row_bytes if self.features.is_file() else 0
        self.rows = min(len(lines), stored)
        # cut torn tails so the next append lines rows and manifest up again
        with open(self.manifest, "rb+") as handle:
            handle.truncate(end if self.rows == len(lines) else _line_end(self.manifest, self.rows))
        with open(self.features, "ab") as handle:
            handle.truncate(self.rows * row_bytes)
        self.entries = {}
        for row, (path, size, mtime) in enumerate(lines[:self.rows]):
            self.entries[path] = (size, mtime, row)  # a later row for the same path supersedes an earlier one
        return dict(self.entries)

    def _reset(self) -> None:
        self.dim, self.rows, self.entries = None, 0, {}
        for path in (self.manifest, self.features):
            path.unlink(missing_ok=True)

    def _header(self) -> bytes:
        return (json.dumps({"format": FORMAT, "version": VERSION, "key": self.key, "dim": self.dim}) + "\n").encode()

    def append(self, meta: Sequence[Tuple[str, int, int]], features: np.ndarray) -> None:
        """Append one chunk of rows: features first, then their manifest lines."""
        features = np.ascontiguousarray(features, dtype=np.float32)
        if self.dim is None:
            self.dim = int(features.shape[1])
            with open(self.manifest, "wb") as handle:
                handle.write(self._header())
            with open(self.features, "wb"):
                pass
        if features.shape != (len(meta), self.dim):
            raise ValueError(f"cache append: {len(meta)} paths but features of shape {features.shape} "
                             f"(cache rows are {self.dim}-d)")
        with open(self.features, "ab") as handle:
            handle.write(features.tobytes())
        with open(self.manifest, "ab") as handle:
            handle.write(b"".join((json.dumps([p, int(s), int(m)]) + "\n").encode() for p, s, m in meta))
        for i, (path, size, mtime) in enumerate(meta):
            self.entries[path] = (int(size), int(mtime), self.rows + i)
        self.rows += len(meta)

    def read(self, rows: Sequence[int]) -> np.ndarray:
        """Feature rows, in the order given (a memory map: only these rows are read)."""
        if not self.rows:
            return np.zeros((0, self.dim or 0), np.float32)
        table = np.memmap(self.features, dtype=np.float32, mode="r", shape=(self.rows, self.dim))
        return np.array(table[np.asarray(rows, dtype=np.int64)])

    def compact(self, live: Dict[str, Entry]) -> bool:
        """Rewrite the cache with the `live` entries only, when dead rows outnumber them; True if rewritten."""
        dead = self.rows - len(live)
        if dead <= max(len(live), 1024):
            return False
        paths = sorted(live)
        feats = self.read([live[p][2] for p in paths])
        # the old manifest goes first: a crash in between leaves no manifest (an empty cache, rebuilt), never old
        # manifest lines paired with the new, reordered feature rows (the inner block, the features, is renamed
        # into place before the outer one, the manifest)
        with atomic_path(self.manifest) as tmp_m, atomic_path(self.features) as tmp_f:
            tmp_f.write_bytes(feats.tobytes())
            tmp_m.write_bytes(self._header() + b"".join(
                (json.dumps([p, live[p][0], live[p][1]]) + "\n").encode() for p in paths))
            self.manifest.unlink()
        self.rows = len(paths)
        self.entries = {p: (live[p][0], live[p][1], i) for i, p in enumerate(paths)}
        return True


def _line_end(path: Path, rows: int) -> int:
    """Byte offset just after the header and `rows` manifest lines."""
    with open(path, "rb") as handle:
        handle.readline()
        for _ in range(rows):
            handle.readline()
        return handle.tell()
