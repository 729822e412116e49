"""The run folder (`output_dir`): one training at a time (a lock), and `--overwrite` leaving only the new run.

The lock is an advisory `flock` on `<output_dir>/.lock`, held by an open file for the whole run: the kernel drops
it when the process ends in any way (exception, Ctrl-C, SIGTERM, kill -9, a crash), so a lock is never stale
while its file stays behind; the file records who holds it, for the refusal message.
"""
from __future__ import annotations

import fcntl
import os
import shutil
import socket
from pathlib import Path
from typing import IO, List, Optional

from ..config import ConfigError

LOCK_NAME = ".lock"
# What a training run writes into its folder (the decoded-image cache `cache/` belongs to the data, not to the
# run: it is kept). `test/` is tools/test.py's default output next to the run's checkpoints.
RUN_OUTPUTS = ("checkpoint.pth", "best.pth", "config.yaml", "train.log", "tensorboard", "test")
RUN_OUTPUT_GLOBS = ("results_epoch*.json", ".*.tmp*")


class RunFolderLocked(ConfigError):
    """Another training is running into the same output_dir."""


class RunLock:
    """An exclusive lock on a run folder, held until `release()` or the end of the process."""

    def __init__(self, run_dir: Path, handle: IO[str], created_dir: bool) -> None:
        self.run_dir, self._handle, self._created_dir = run_dir, handle, created_dir

    @classmethod
    def acquire(cls, run_dir: Path) -> "RunLock":
        """Take the lock of `run_dir` (created if needed), or a RunFolderLocked naming the holder."""
        run_dir = Path(run_dir)
        created = not run_dir.exists()
        run_dir.mkdir(parents=True, exist_ok=True)
        path = run_dir / LOCK_NAME
        while True:
            handle = open(path, "a+", encoding="utf-8")  # a+: never truncates the holder's record before we own it
            try:
                fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                handle.seek(0)
                holder = handle.read().strip() or "another process"
                handle.close()
                raise RunFolderLocked(f"output_dir '{run_dir}' is in use by another training ({holder}; lock "
                                      f"{path}): wait for it to finish, or choose another output_dir") from None
            # a holder that released meanwhile unlinked the file we opened: lock the current one instead
            try:
                if os.fstat(handle.fileno()).st_ino == os.stat(path).st_ino:
                    break
            except FileNotFoundError:
                pass
            handle.close()
        handle.seek(0)
        handle.truncate()
        handle.write(f"pid {os.getpid()} on {socket.gethostname()}")
        handle.flush()
        return cls(run_dir, handle, created)

    def release(self, remove_empty_dir: bool = False) -> None:
        """Drop the lock and its file; `remove_empty_dir`: also the run folder when this lock created it and
        nothing else was written (a run refused during its set-up leaves nothing behind)."""
        if self._handle is None:
            return
        try:
            (self.run_dir / LOCK_NAME).unlink()
        except OSError:
            pass
        fcntl.flock(self._handle.fileno(), fcntl.LOCK_UN)
        self._handle.close()
        self._handle = None
        if remove_empty_dir and self._created_dir:
            try:
                self.run_dir.rmdir()  # only succeeds when empty
            except OSError:
                pass


def clear_previous_run(run_dir: Path) -> List[str]:
    """Remove what an earlier run wrote into `run_dir` (`--overwrite`: the folder then holds only the new run, so
    no `best.pth` or `results_epoch*.json` of another run sits beside it). Other files are left alone: the folder
    may hold the user's own. Returns the names removed."""
    run_dir = Path(run_dir)
    removed = []
    targets = [run_dir / name for name in RUN_OUTPUTS]
    for pattern in RUN_OUTPUT_GLOBS:
        targets += sorted(run_dir.glob(pattern))
    for target in targets:
        if target.is_dir() and not target.is_symlink():
            shutil.rmtree(target)
        elif target.exists() or target.is_symlink():
            target.unlink()
        else:
            continue
        removed.append(target.name)
    return removed


def is_main_rank() -> bool:
    """Whether this process is rank 0 of its launch (read from torchrun's environment: the lock is taken before
    the process group exists)."""
    return int(os.environ.get("RANK", "0")) == 0
