"""Decoded-image cache: a split decoded once into a memory-mapped uint8 array at the size the pipeline needs.

Decoding JPEGs is most of the data cost of a re-ID epoch (the images are small, the networks are fast), and the
same 13k training images are decoded again every epoch by the per-sample pipeline. Here each split is decoded
once (in a thread pool: OpenCV releases the GIL), resized with the same interpolation as the per-sample
pipeline's `A.Resize` (bilinear), and stored as one `(N, H, W, 3)` RGB uint8 `.npy` file that every later run
memory-maps. The file name is a hash of the file list (path, byte size, mtime) and the resize parameters, so a
changed, added or removed image gives a new key and a rebuild. An image edited in place with its size and mtime
kept (some sync tools restore the mtime) is not seen that way: `data.cache_hash=content` hashes every file's bytes
instead (one extra read of the split per run).

An entry that cannot be read back (a truncated `.npy`, a corrupt `.bad.json`) is said to be damaged, removed and
rebuilt. The whole folder is kept under `data.cache_max_gb` by evicting the least recently used entries
(`reid.data.cache_folder`; `reid-cache` lists and cleans it).

A build writes to a temporary file in the cache folder and renames it into place when complete, so an
interrupted build is never taken for a cache (its temporary file is removed by the next build of that key).
"""
from __future__ import annotations

import hashlib
import json
import os
import tempfile
import warnings
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, List, Optional, Sequence, Tuple, Union

import cv2
import numpy as np
import torch

from ..registry import CHOICES
from ..utils import atomic_path, atomic_write
from . import cache_folder
from .image_io import ImageReadError, read_image

FORMAT_VERSION = 1  # bump when the stored content changes (interpolation, layout)
PathLike = Union[str, Path]
BadFiles = List[Tuple[int, str]]  # (row, reason) of the files that could not be decoded


@dataclass
class DecodedImages:
    """A split's images as one `(N, H, W, 3)` RGB uint8 array (memory-mapped) in the samples' order."""

    images: np.ndarray
    file: Optional[Path]

    def __len__(self) -> int:
        return int(self.images.shape[0])

    @property
    def size(self) -> Tuple[int, int]:
        return int(self.images.shape[1]), int(self.images.shape[2])

    def batch(self, indices: Sequence[int]) -> torch.Tensor:
        """uint8 `(B, H, W, 3)` tensor of the given rows (a copy: the memory map stays read-only)."""
        return torch.from_numpy(np.ascontiguousarray(self.images[np.asarray(indices, dtype=np.int64)]))


HASHES = CHOICES["data.cache_hash"]  # what identifies a file's version in the key (the config's data.cache_hash)


def cache_key(paths: Sequence[str], height: int, width: int, hash_by: str = "stat") -> str:
    """Hash of the file list (path and its size+mtime, or its bytes for `hash_by="content"`) and the resize
    parameters; a missing file hashes as such."""
    if hash_by not in HASHES:
        raise ValueError(f"data.cache_hash: expected one of {', '.join(HASHES)}, got {hash_by!r}")
    mode = "" if hash_by == "stat" else ":content"  # the stat keys stay those of earlier releases
    digest = hashlib.sha1(f"reid-decoded-v{FORMAT_VERSION}:{height}x{width}:linear:{len(paths)}{mode}".encode())
    for path in paths:
        try:
            if hash_by == "content":
                stamp = hashlib.sha1(Path(path).read_bytes()).hexdigest()  # re-ID crops: a few kB each
            else:
                st = os.stat(path)
                stamp = f"{st.st_size}:{st.st_mtime_ns}"
        except OSError:
            stamp = "missing"
        digest.update(f"\n{os.path.abspath(path)}\t{stamp}".encode())
    return digest.hexdigest()[:20]


def cache_nbytes(count: int, height: int, width: int) -> int:
    return int(count) * int(height) * int(width) * 3


def default_cache_dir(data_root: PathLike, run_dir: PathLike) -> Path:
    """`<data root>/.reid_cache` when that can be written, else `<run folder>/cache` (read-only data roots)."""
    preferred = Path(data_root) / ".reid_cache"
    if _writable(preferred):
        return preferred
    return Path(run_dir) / "cache"


def _writable(folder: Path) -> bool:
    return writable_folder_problem(folder, create=True) is None


def writable_folder_problem(folder: Path, create: bool = False) -> Optional[str]:
    """Why files cannot be written in `folder`, or None. Tried, not inferred from permission bits (root ignores
    them; read-only mounts do not show in them). A missing folder is made when `create`, otherwise its nearest
    existing parent is tried, so that a check alone leaves nothing behind."""
    folder = Path(folder)
    if folder.exists() and not folder.is_dir():
        return "is a file, not a folder"
    probe = folder
    if not create:
        while not probe.exists() and probe != probe.parent:
            probe = probe.parent
        if not probe.is_dir():
            return f"cannot be made: {probe} is a file"
    try:
        if create:
            folder.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=probe, prefix=".probe-"):
            pass
    except OSError as exc:
        return f"cannot be written ({exc.strerror or exc})"
    return None


def decode_resized(path: str, height: int, width: int) -> np.ndarray:
    """RGB uint8 `(height, width, 3)`: the per-sample pipeline's `A.Resize(height, width)` (bilinear)."""
    img = read_image(path)
    if img.shape[0] != height or img.shape[1] != width:
        img = cv2.resize(img, (width, height), interpolation=cv2.INTER_LINEAR)
    return img


def load_or_build(paths: Sequence[str], height: int, width: int, cache_dir: PathLike, *, threads: int = 2,
                  progress: Optional[Callable] = None, desc: str = "decoding", max_bytes: Optional[float] = None,
                  hash_by: str = "stat",
                  log: Optional[Callable[[str], None]] = None) -> Tuple[DecodedImages, BadFiles]:
    """Memory-map the cached array for `paths` at `height x width`, decoding and storing it first if needed.

    Returns the images and the unreadable files as `(index, reason)`; their rows are zero and the caller applies
    the error policy (they are recorded with the cache, so a reuse reports them again without decoding).
    `progress(iterable, total=..., desc=...)` wraps the decoding loop (e.g. a progress bar). `max_bytes` bounds
    the whole folder (least recently used entries are evicted; when this run's own entries leave no room the
    split is decoded in memory, not stored). `log` gets the notes (a damaged entry, an eviction); default: a
    warning.
    """
    say = log if log is not None else (lambda message: warnings.warn(message, stacklevel=3))
    folder = Path(cache_dir)
    key = cache_key(paths, height, width, hash_by)
    final = folder / f"{key}.npy"
    bad_file = folder / f"{key}.bad.json"
    if final.exists() or bad_file.exists():
        found, damage = _load_entry(final, bad_file, len(paths), height, width)
        if found is not None:
            cache_folder.IN_USE.add(key)
            cache_folder.touch(final)
            return found
        say(f"decoded-image cache entry {final} is damaged ({damage}): removed, decoding the split again")
        final.unlink(missing_ok=True)
        bad_file.unlink(missing_ok=True)
    folder.mkdir(parents=True, exist_ok=True)
    _remove_stale_temporaries(folder, key)
    needed = cache_nbytes(len(paths), height, width) + 1024  # the .npy header (128 B), a short .bad.json
    if max_bytes is not None and not cache_folder.make_room(folder, needed, max_bytes, {key}, say):
        say(f"{desc}: not stored in {folder}: this run's other decoded splits leave less than {needed / 1e6:.1f} MB "
            f"under data.cache_max_gb={max_bytes / 1e9:g}; decoding it in memory")
        return decode_in_memory(paths, height, width, threads=threads, progress=progress, desc=desc)
    # the name _remove_stale_temporaries parses; readable as the umask allows (a shared dataset folder)
    with atomic_path(final, prefix=f"{key}.npy.tmp-{os.getpid()}-", suffix="") as tmp:
        out = np.lib.format.open_memmap(tmp, mode="w+", dtype=np.uint8, shape=(len(paths), height, width, 3))
        bad = _decode_into(out, paths, height, width, threads, progress, desc)
        out.flush()
        del out
        _atomic_write_text(bad_file, json.dumps(bad))
    # the array is renamed last: its presence means complete
    cache_folder.IN_USE.add(key)
    return DecodedImages(np.load(final, mmap_mode="r"), final), bad


def _load_entry(final: Path, bad_file: Path, count: int, height: int,
                width: int) -> Tuple[Optional[Tuple[DecodedImages, BadFiles]], str]:
    """The stored entry, or None and why it cannot be used (a missing half, a truncated array, corrupt JSON)."""
    if not final.is_file() or not bad_file.is_file():
        return None, f"{(bad_file if final.is_file() else final).name} is missing"
    try:
        images = np.load(final, mmap_mode="r")
    except (OSError, ValueError, EOFError) as exc:  # a truncated file fails to map ("mmap length is greater")
        return None, f"{final.name}: {exc}"
    expected = (count, height, width, 3)
    if images.shape != expected or images.dtype != np.uint8:
        return None, f"{final.name} holds {images.dtype} {images.shape}, expected uint8 {expected}"
    try:
        bad = [(int(i), str(r)) for i, r in json.loads(bad_file.read_text())]
        if any(not 0 <= i < count for i, _ in bad):
            raise ValueError(f"a row outside 0..{count - 1}")
    except (OSError, ValueError, TypeError) as exc:  # json.JSONDecodeError is a ValueError
        return None, f"{bad_file.name}: {exc}"
    return (DecodedImages(images, final), bad), ""


def decode_in_memory(paths: Sequence[str], height: int, width: int, *, threads: int = 2,
                     progress: Optional[Callable] = None, desc: str = "decoding") -> Tuple[DecodedImages, BadFiles]:
    """The same array without a cache file (small splits, or when the cache is off)."""
    out = np.zeros((len(paths), height, width, 3), np.uint8)
    bad = _decode_into(out, paths, height, width, threads, progress, desc)
    return DecodedImages(out, None), bad


def _decode_into(out: np.ndarray, paths: Sequence[str], height: int, width: int, threads: int,
                 progress: Optional[Callable], desc: str) -> BadFiles:
    def one(i: int) -> Optional[Tuple[int, str]]:
        try:
            out[i] = decode_resized(paths[i], height, width)
        except ImageReadError as exc:
            out[i] = 0
            return i, str(exc)
        return None

    cv2.setNumThreads(1)  # parallelism comes from the pool; OpenCV's own threads would oversubscribe
    with ThreadPoolExecutor(max_workers=max(1, threads)) as pool:
        results = pool.map(one, range(len(paths)), chunksize=64)
        if progress is not None:
            results = progress(results, total=len(paths), desc=desc)
        return [r for r in results if r is not None]


def _remove_stale_temporaries(folder: Path, key: str) -> None:
    """Temporary files of this key left by an interrupted build (its process is gone) are deleted."""
    for tmp in folder.glob(f"{key}.npy.tmp-*"):
        try:
            pid = int(tmp.name.split(".tmp-")[1].split("-")[0])
        except (IndexError, ValueError):
            pid = -1
        if pid != os.getpid() and not _process_alive(pid):
            tmp.unlink(missing_ok=True)


def _process_alive(pid: int) -> bool:
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _atomic_write_text(path: Path, text: str) -> None:
    with atomic_write(path) as fh:
        fh.write(text)


def decode_split(paths: Sequence[str], height: int, width: int, *, cache_dir: Optional[PathLike],
                 max_gb: float, threads: int = 2, progress: Optional[Callable] = None,
                 desc: str = "decoding", hash_by: str = "stat",
                 log: Optional[Callable[[str], None]] = None) -> Tuple[Optional[DecodedImages], BadFiles]:
    """A split's decoded images under the run's cache policy, or `(None, [])` when they exceed `max_gb`.

    `max_gb` also bounds the cache folder as a whole (see `load_or_build`). `cache_dir=None` decodes into memory
    without writing a cache file.
    """
    if cache_nbytes(len(paths), height, width) > max_gb * 1e9:
        return None, []
    if cache_dir is None:
        return decode_in_memory(paths, height, width, threads=threads, progress=progress, desc=desc)
    return load_or_build(paths, height, width, cache_dir, threads=threads, progress=progress, desc=desc,
                         max_bytes=max_gb * 1e9, hash_by=hash_by, log=log)
