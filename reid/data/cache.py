"""Decoded-image cache: a split decoded once into a memory-mapped uint8 array at the size the pipeline needs.

Decoding JPEGs is most of the data cost of a re-ID epoch (the images are small, the networks are fast), and the
same 13k training images are decoded again every epoch by the per-sample pipeline. Here each split is decoded
once (in a thread pool: OpenCV releases the GIL), resized with the same interpolation as the per-sample
pipeline's `A.Resize` (bilinear), and stored as one `(N, H, W, 3)` RGB uint8 `.npy` file that every later run
memory-maps. The file name is a hash of the file list (path, byte size, mtime) and the resize parameters, so a
changed, added or removed image gives a new key and a rebuild; an old entry is never used for new content.

A build writes to a temporary file in the cache folder and renames it into place when complete, so an
interrupted build is never taken for a cache (its temporary file is removed by the next build of that key).
"""
from __future__ import annotations

import hashlib
import json
import os
import tempfile
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, List, Optional, Sequence, Tuple, Union

import cv2
import numpy as np
import torch

from ..utils import atomic_path, atomic_write
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


def cache_key(paths: Sequence[str], height: int, width: int) -> str:
    """Hash of the file list (path, size, mtime) and the resize parameters; a missing file hashes as such."""
    digest = hashlib.sha1(f"reid-decoded-v{FORMAT_VERSION}:{height}x{width}:linear:{len(paths)}".encode())
    for path in paths:
        try:
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
    """Tried, not inferred from permission bits (root ignores them; read-only mounts do not show in them)."""
    try:
        folder.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=folder, prefix=".probe-"):
            pass
    except OSError:
        return False
    return True


def decode_resized(path: str, height: int, width: int) -> np.ndarray:
    """RGB uint8 `(height, width, 3)`: the per-sample pipeline's `A.Resize(height, width)` (bilinear)."""
    img = read_image(path)
    if img.shape[0] != height or img.shape[1] != width:
        img = cv2.resize(img, (width, height), interpolation=cv2.INTER_LINEAR)
    return img


def load_or_build(paths: Sequence[str], height: int, width: int, cache_dir: PathLike, *, threads: int = 2,
                  progress: Optional[Callable] = None, desc: str = "decoding") -> Tuple[DecodedImages, BadFiles]:
    """Memory-map the cached array for `paths` at `height x width`, decoding and storing it first if needed.

    Returns the images and the unreadable files as `(index, reason)`; their rows are zero and the caller applies
    the error policy (they are recorded with the cache, so a reuse reports them again without decoding).
    `progress(iterable, total=..., desc=...)` wraps the decoding loop (e.g. a progress bar).
    """
    folder = Path(cache_dir)
    key = cache_key(paths, height, width)
    final = folder / f"{key}.npy"
    bad_file = folder / f"{key}.bad.json"
    if final.is_file() and bad_file.is_file():
        images = np.load(final, mmap_mode="r")
        if images.shape == (len(paths), height, width, 3) and images.dtype == np.uint8:
            bad = [(int(i), str(r)) for i, r in json.loads(bad_file.read_text())]
            return DecodedImages(images, final), bad
    folder.mkdir(parents=True, exist_ok=True)
    _remove_stale_temporaries(folder, key)
    # the name _remove_stale_temporaries parses; readable as the umask allows (a shared dataset folder)
    with atomic_path(final, prefix=f"{key}.npy.tmp-{os.getpid()}-", suffix="") as tmp:
        out = np.lib.format.open_memmap(tmp, mode="w+", dtype=np.uint8, shape=(len(paths), height, width, 3))
        bad = _decode_into(out, paths, height, width, threads, progress, desc)
        out.flush()
        del out
        _atomic_write_text(bad_file, json.dumps(bad))
    # the array is renamed last: its presence means complete
    return DecodedImages(np.load(final, mmap_mode="r"), final), bad


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
                 desc: str = "decoding") -> Tuple[Optional[DecodedImages], BadFiles]:
    """A split's decoded images under the run's cache policy, or `(None, [])` when they exceed `max_gb`.

    `cache_dir=None` decodes into memory without writing a cache file.
    """
    if cache_nbytes(len(paths), height, width) > max_gb * 1e9:
        return None, []
    if cache_dir is None:
        return decode_in_memory(paths, height, width, threads=threads, progress=progress, desc=desc)
    return load_or_build(paths, height, width, cache_dir, threads=threads, progress=progress, desc=desc)
