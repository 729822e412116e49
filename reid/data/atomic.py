"""Folders written all at once: built in a temporary sibling, marked complete, then renamed into place."""
from __future__ import annotations

import os
import shutil
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

from ..utils import make_public

MARKER = ".complete"


def is_complete(folder: Path) -> bool:
    return (Path(folder) / MARKER).is_file()


@contextmanager
def building_folder(final: Path, marker_text: str = "ok") -> Iterator[Path]:
    """Yield a temporary folder next to `final`; when the block succeeds it is marked and renamed to `final`.

    An interrupted build leaves no `final` (or an old incomplete one, without the marker, which is replaced), so a
    half-written folder is never taken as complete.
    """
    final = Path(final)
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{final.name}.tmp-", dir=final.parent))
    try:
        make_public(tmp)  # mkdtemp makes it owner-only: a shared dataset folder must stay readable to others
        yield tmp
        (tmp / MARKER).write_text(marker_text)
        if final.exists():
            shutil.rmtree(final)
        os.replace(tmp, final)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
