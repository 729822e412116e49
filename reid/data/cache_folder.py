"""The decoded-image cache folder as a whole: its entries, their total size, least-recently-used eviction.

Each entry of `reid.data.cache` is `<key>.npy` (the images) and `<key>.bad.json` (its unreadable files). Keys
change whenever a file list, a file or the image size changes, so without a bound old entries would pile up in
the user's data folder forever. `data.cache_max_gb` bounds the whole folder: before an entry is stored, the least
recently used entries are removed until it fits. "Used" is the `.npy` file's modification time, which every load
sets to now (access times are not kept on most mounts: relatime, noatime). Entries this process has loaded are
never evicted by it, since a run's splits are decoded one after another and each is in use until the run ends.
"""
from __future__ import annotations

import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, List, Optional, Set, Union

PathLike = Union[str, Path]
IN_USE: Set[str] = set()  # keys loaded or built by this process


@dataclass
class Entry:
    """One cached split: its key, its files, their bytes and when it was last used (seconds since the epoch)."""

    key: str
    files: List[Path]
    nbytes: int
    last_used: float

    @property
    def array(self) -> Path:
        return self.files[0].with_name(f"{self.key}.npy")


def entries(folder: PathLike) -> List[Entry]:
    """The folder's entries, least recently used first; an orphaned `.bad.json` or a temporary file counts too."""
    folder = Path(folder)
    if not folder.is_dir():
        return []
    groups = {}
    for path in folder.iterdir():
        name = path.name
        if name.endswith(".bad.json"):
            key = name[: -len(".bad.json")]
        elif ".npy" in name:  # <key>.npy and <key>.npy.tmp-<pid>-... of a build
            key = name.split(".npy", 1)[0]
        else:
            continue  # not ours (the folder may be shared with the user's files)
        try:
            st = path.stat()
        except OSError:  # removed meanwhile
            continue
        files, size, used = groups.get(key, ([], 0, 0.0))
        groups[key] = (files + [path], size + st.st_size, max(used, st.st_mtime))
    found = [Entry(k, sorted(f), s, u) for k, (f, s, u) in groups.items()]
    return sorted(found, key=lambda e: (e.last_used, e.key))


def total_bytes(folder: PathLike) -> int:
    return sum(e.nbytes for e in entries(folder))


def touch(array: Path) -> None:
    """Mark an entry used now (its LRU time); a read-only cache folder simply keeps the old time."""
    try:
        os.utime(array)
    except OSError:
        pass


def remove(entry: Entry) -> None:
    for path in entry.files:
        path.unlink(missing_ok=True)


def make_room(folder: PathLike, needed: int, max_bytes: float, keep: Set[str] = frozenset(),
              log: Optional[Callable[[str], None]] = None) -> bool:
    """Evict least recently used entries until `needed` more bytes fit under `max_bytes`; False when they cannot
    (the entries in `keep` and this process's own take the room), with nothing removed in that case."""
    protected = set(keep) | IN_USE
    present = entries(folder)
    total = sum(e.nbytes for e in present)
    victims = []
    for entry in present:
        if total + needed <= max_bytes:
            break
        if entry.key not in protected and not _being_built(entry):
            victims.append(entry)
            total -= entry.nbytes
    if total + needed > max_bytes:
        return False
    for entry in victims:
        remove(entry)
    if victims and log is not None:
        freed = sum(e.nbytes for e in victims)
        log(f"decoded-image cache {folder}: removed {len(victims)} least recently used entr"
            f"{'y' if len(victims) == 1 else 'ies'} ({freed / 1e6:.1f} MB) to stay under data.cache_max_gb="
            f"{max_bytes / 1e9:g}")
    return True


def _being_built(entry: Entry) -> bool:
    """A temporary file written in the last minute belongs to a build in progress (maybe another process's)."""
    return any(".tmp-" in p.name and time.time() - p.stat().st_mtime < 60 for p in entry.files if p.exists())
