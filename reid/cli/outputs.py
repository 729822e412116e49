"""Output paths of the tools, checked before any work: an output never replaces an input, a checkpoint, or a file
the tool did not write itself (`--force` allows the last two; an input never).

Standard library only: the command-line tools call it before importing torch.
"""
from __future__ import annotations

import json
import os
import zipfile
from pathlib import Path
from typing import Callable, Iterable, Optional, Tuple, Union

PathLike = Union[str, Path]


def _same_file(a: Path, b: Path) -> bool:
    try:
        return a.exists() and b.exists() and os.path.samefile(a, b)
    except OSError:
        return False


def is_torch_checkpoint(path: PathLike) -> bool:
    """A file torch.save wrote (a zip archive holding `<name>/data.pkl`), whatever its extension."""
    try:
        with zipfile.ZipFile(path) as archive:
            return any(name.endswith("/data.pkl") or name == "data.pkl" for name in archive.namelist())
    except (OSError, zipfile.BadZipFile):
        return False


def is_results_json(path: PathLike) -> bool:
    """A results file of tools/test.py or tools/evaluate.py (`EvaluationResult.save_json`: a mapping with mAP)."""
    try:
        with open(path, encoding="utf-8") as handle:
            data = json.load(handle)
    except (OSError, ValueError):
        return False
    return isinstance(data, dict) and "mAP" in data and "cmc" in data


def output_problem(path: PathLike, flag: str, inputs: Iterable[Tuple[str, Optional[PathLike]]] = (),
                   ours: Optional[Callable[[Path], bool]] = None, force: bool = False) -> Optional[str]:
    """Why `flag path` must not be written, or None.

    `inputs`: (flag, path) pairs this command reads; `ours(path)`: whether an existing file is one this tool
    writes (such a file is replaced: re-running a command updates its output)."""
    target = Path(path)
    for name, source in inputs:
        if source is not None and _same_file(target, Path(source)):
            return f"{flag} {path} is the input {name} of this command: writing it would destroy it"
    if target.is_dir():
        return f"{flag} {path} is a folder (give a file name)"
    if not target.exists() or force:
        return None
    if is_torch_checkpoint(target):
        return (f"{flag} {path} is a checkpoint: not replaced (choose another file name, or pass --force to "
                "replace it)")
    if ours is not None and not ours(target):
        return (f"{flag} {path} exists and was not written by this tool: not replaced (choose another file name, "
                "or pass --force to replace it)")
    return None
