"""Files written all at once, readable as the umask allows.

Every writer goes through a temporary sibling and a rename, so a crash never leaves half a file under the final
name. `tempfile.mkstemp` creates that sibling owner-only (0600) whatever the umask, and the rename keeps the mode:
without the chmod here, results, caches and checkpoints in a shared `runs/` or dataset folder would be unreadable
to everyone else. The mode given is the one `open()` would have given: 0o666 & ~umask (folders 0o777 & ~umask).
"""
from __future__ import annotations

import errno
import os
import shutil
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Iterator, Optional, Union

PathLike = Union[str, Path]

# The write errors that mean "no room": a full device, a quota, the file-size limit (`ulimit -f`, RLIMIT_FSIZE)
NO_ROOM = {errno.ENOSPC: "no space left on the device", errno.EDQUOT: "disk quota exceeded",
           errno.EFBIG: "file-size limit reached (ulimit -f)"}


class DiskFullError(OSError):
    """A write that ran out of room; the message names the file, the free space and about how much is needed."""

    def __str__(self) -> str:  # the sentence alone: OSError's "[Errno 27] " prefix means nothing to a user
        return str(self.strerror)


class WriteRecorder:
    """A binary file wrapper that remembers the `OSError` of a failed `write`.

    Some writers hide it: `torch.save`'s zip writer reports a full disk as a RuntimeError ("unexpected pos"),
    with no errno; the recorded error lets the caller say what actually happened.
    """

    def __init__(self, handle: IO[bytes]) -> None:
        self.handle = handle
        self.error: Optional[OSError] = None

    def write(self, data: bytes) -> int:
        try:
            return self.handle.write(data)
        except OSError as exc:
            self.error = exc
            raise

    def flush(self) -> None:
        self.handle.flush()


def _megabytes(count: int) -> str:
    return f"{count / 1e6:.1f} MB"


def _no_room(path: Path, tmp: Path, exc: OSError) -> DiskFullError:
    """The one-line error for `exc` (a `NO_ROOM` errno) while writing `path` through `tmp`."""
    written = tmp.stat().st_size if tmp.exists() else 0
    previous = path.stat().st_size if path.is_file() else 0
    # the failed write stopped at `written`; a file of this name written before is the better estimate
    needed = (f"about {_megabytes(previous)} (the previous file's size)" if previous > written
              else f"more than the {_megabytes(written)} written when it failed")
    free = shutil.disk_usage(path.parent).free
    reason = NO_ROOM[exc.errno]
    if exc.errno == errno.EFBIG:
        try:
            import resource  # POSIX only
        except ImportError:
            resource = None
        limit = resource.getrlimit(resource.RLIMIT_FSIZE)[0] if resource else -1
        if resource and limit != resource.RLIM_INFINITY:
            reason += f", {_megabytes(limit)} per file"
    kept = f"the previous {path.name} is untouched" if path.exists() else f"no {path.name} was written"
    return DiskFullError(exc.errno, f"cannot write {path}: {reason}; {_megabytes(free)} free in {path.parent}, "
                                    f"{needed} needed; {kept}, and no temporary file is left")


def current_umask() -> int:
    """The process umask, read without changing it where the system allows.

    `os.umask` can only be read by setting it; in between, a file created by another thread would get the
    temporary value, so Linux's /proc/self/status (kernel >= 4.7) is read first.
    """
    try:
        with open("/proc/self/status", encoding="ascii") as status:
            for line in status:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError):
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def public_mode(folder: bool = False) -> int:
    """The mode a plain `open()` (or `mkdir`) would give under the current umask."""
    return (0o777 if folder else 0o666) & ~current_umask()


def make_public(path: PathLike) -> None:
    """Give a file or folder made by `tempfile` (owner-only) the umask's mode instead."""
    os.chmod(path, public_mode(Path(path).is_dir()))


def _fsync_folder(folder: Path) -> None:
    """Make the rename itself durable (POSIX); systems that cannot open a folder skip it."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


@contextmanager
def atomic_path(path: PathLike, *, prefix: Optional[str] = None, suffix: Optional[str] = None,
                keep_extension: bool = False, fsync: bool = True) -> Iterator[Path]:
    """Yield a temporary sibling of `path` for any writer (torch.save, np.save, cv2.imwrite, savefig, ...).

    When the block succeeds the file is fsynced, given the umask's mode and renamed to `path`; when it fails the
    temporary file is removed and `path` is untouched; a write that runs out of room (full disk, quota,
    `ulimit -f`) becomes one `DiskFullError` naming the file, the free space and the space needed. The default name `.<name>.<random>.tmp<pid>` is the one
    `reid.checkpoint.remove_stale_temp_files` recognises; `keep_extension` appends `path`'s extension for writers
    that pick the format from it (OpenCV, matplotlib).
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    if suffix is None:
        suffix = f".tmp{os.getpid()}" + (path.suffix if keep_extension else "")
    fd, name = tempfile.mkstemp(prefix=prefix if prefix is not None else f".{path.name}.", suffix=suffix,
                                dir=path.parent)
    os.close(fd)
    tmp = Path(name)
    try:
        try:
            yield tmp
            if fsync:
                with open(tmp, "rb+") as handle:
                    os.fsync(handle.fileno())
        except OSError as exc:
            if exc.errno in NO_ROOM and not isinstance(exc, DiskFullError):
                raise _no_room(path, tmp, exc) from None
            raise
        os.chmod(tmp, public_mode())
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()
    if fsync:
        _fsync_folder(path.parent)


@contextmanager
def atomic_write(path: PathLike, mode: str = "w", *, encoding: Optional[str] = "utf-8",
                 fsync: bool = True) -> Iterator[IO]:
    """`open(path, mode)` that only replaces `path` when the block succeeds (see `atomic_path`)."""
    if mode not in ("w", "wb"):
        raise ValueError(f"atomic_write mode must be 'w' or 'wb', got {mode!r}")
    with atomic_path(path, fsync=fsync) as tmp:
        with open(tmp, mode, encoding=None if "b" in mode else encoding) as handle:
            yield handle
            handle.flush()
