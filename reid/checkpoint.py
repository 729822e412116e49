"""Checkpoints: written atomically, loaded with clear errors, carrying every RNG state for exact resume."""
from __future__ import annotations

import os
import random
import re
from pathlib import Path
from typing import Any, Dict, Iterable, List, Mapping, Optional, Tuple, Union

import numpy as np
import torch

from .utils import atomic_path
from .utils.atomic import WriteRecorder

PathLike = Union[str, Path]


class CheckpointError(RuntimeError):
    """A checkpoint that is missing or does not fit the model/config it is loaded into."""


# `.checkpoint.pth.tmp<pid>`: the temporary name `save_checkpoint` writes before its rename.
TEMP_NAME = re.compile(r"^\..+\.tmp(\d+)$")


def _process_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)  # signal 0: existence check only
    except ProcessLookupError:
        return False
    except OSError:  # e.g. PermissionError: the process exists but belongs to someone else
        return True
    return True


def remove_stale_temp_files(folder: PathLike) -> List[Path]:
    """Delete the temporary files of checkpoint writes that were killed (kill -9, power loss) in `folder`.

    The atomic rename means such a file is never mistaken for a checkpoint, but it is dead weight (a full model
    copy); a file whose writer process no longer runs can only be such a leftover. Files of live processes
    (another run writing into the same folder right now) and of this process are left alone. Returns the paths
    removed."""
    removed = []
    for candidate in Path(folder).glob(".*.tmp*"):
        match = TEMP_NAME.match(candidate.name)
        if match is None or not candidate.is_file():
            continue
        pid = int(match.group(1))
        if pid == os.getpid() or _process_alive(pid):
            continue
        try:
            candidate.unlink()
            removed.append(candidate)
        except OSError:  # removed by a concurrent start, or a read-only folder: leave it
            pass
    return removed


def save_checkpoint(state: Mapping[str, Any], path: PathLike) -> Path:
    """Write `state` to `path` via a temporary file and an atomic rename: a crash never leaves half a file.

    Leftover temporary files of earlier, killed writes in the same folder are removed first (see
    `remove_stale_temp_files`), so a run resumed after a kill -9 does not keep them around."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    remove_stale_temp_files(path.parent)
    with atomic_path(path) as tmp, open(tmp, "wb") as handle:  # named as remove_stale_temp_files expects
        writer = WriteRecorder(handle)
        try:
            torch.save(dict(state), writer)
        except RuntimeError:
            if writer.error is not None:  # a full disk, which torch reports as "unexpected pos": say so
                raise writer.error from None
            raise
    return path


def load_checkpoint(path: PathLike, map_location: Union[str, torch.device] = "cpu") -> Dict[str, Any]:
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint not found: {path}")
    try:
        # Our checkpoints hold only tensors, numbers, strings and containers (RNG states are tensors/lists).
        state = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as exc:  # noqa: BLE001 - torch raises several types for corrupt files
        from .models.weights import load_error_reason

        raise CheckpointError(f"cannot read checkpoint {path}: {load_error_reason(exc)}") from None
    if not isinstance(state, dict) or "model" not in state:
        raise CheckpointError(f"{path} is not a reid checkpoint (no 'model' entry)")
    return state


def load_model_state(model: torch.nn.Module, state_dict: Mapping[str, torch.Tensor], source: str) -> None:
    """Load weights strictly, naming missing, unexpected and shape-mismatched keys on failure."""
    own = model.state_dict()
    missing = sorted(set(own) - set(state_dict))
    unexpected = sorted(set(state_dict) - set(own))
    mismatched = [
        f"{k}: checkpoint {tuple(state_dict[k].shape)} vs model {tuple(own[k].shape)}"
        for k in sorted(set(own) & set(state_dict))
        if tuple(own[k].shape) != tuple(state_dict[k].shape)
    ]
    # A NaN/inf weight makes every feature NaN: searches then rank at random (distance inf) and the export's
    # parity check compares NaN with NaN; refused here, the one place every loaded model goes through.
    bad = [k for k, v in state_dict.items() if torch.is_tensor(v) and v.is_floating_point()
           and not bool(torch.isfinite(v).all())]
    if bad:
        raise CheckpointError(f"checkpoint {source} holds non-finite weights (NaN or inf) in {_short(bad)}: the "
                              "run diverged before it was saved; use an earlier checkpoint")
    if missing or unexpected or mismatched:
        parts = []
        if missing:
            parts.append(f"missing keys: {_short(missing)}")
        if unexpected:
            parts.append(f"unexpected keys: {_short(unexpected)}")
        if mismatched:
            parts.append(f"shape mismatches: {_short(mismatched)}")
        raise CheckpointError(f"checkpoint {source} does not fit the model ({'; '.join(parts)})")
    model.load_state_dict(state_dict)


def load_model_from_checkpoint(checkpoint_path: PathLike,
                               cfg: Optional[Union[PathLike, Mapping[str, Any]]] = None,
                               device: Union[str, torch.device] = "cpu",
                               num_classes: Optional[int] = None) -> Tuple[torch.nn.Module, Dict[str, Any]]:
    """The one way to load a trained model: returns (model in eval mode on `device`, the config it was built from).

    `cfg`: a config mapping or file; None takes the config embedded in the checkpoint (over the schema defaults).
    The classifier is sized by the checkpoint's `num_classes` (`num_classes` only when the checkpoint has none).
    `device`: "cpu", "cuda", "cuda:1", "auto" or a `torch.device`. Every failure is a `CheckpointError` naming the
    file: missing or unreadable, not a reid checkpoint, a model of another backbone than the config builds, or
    weights that do not fit (missing / unexpected / shape-mismatched keys). The backbone is built without its
    pretrained file (`model.pretrained` is ignored): the checkpoint holds every weight.

    Args:
        checkpoint_path: the checkpoint file; cfg: None, a config mapping or a config file.
        device: where the model goes; num_classes: classifier size for checkpoints that do not record it.
    Returns:
        (model, cfg): the model in eval mode on `device` and the resolved config it was built from.
    """
    from .builders import build_model_from_config, resolve_device
    from .config import load_config, merge
    from .models import heads  # noqa: F401 (declares model.pooling / model.classifier: checked when read)

    state = load_checkpoint(checkpoint_path)
    if cfg is None:
        source = f"the config stored in {checkpoint_path}"
        cfg = merge(load_config(), state.get("config") or {}, f"config stored in {checkpoint_path}")
    elif isinstance(cfg, Mapping):
        source, cfg = "the given config", dict(cfg)
    else:
        source, cfg = f"config {cfg}", load_config(cfg)
    saved_model = (state.get("config") or {}).get("model") or {}
    expected = cfg["model"]["backbone"]
    if saved_model and saved_model.get("backbone") != expected:
        raise CheckpointError(f"checkpoint {checkpoint_path} holds a '{saved_model.get('backbone')}' model but "
                              f"{source} builds '{expected}'")
    saved_classes = state.get("num_classes")
    # the checkpoint holds every weight: the ImageNet file the run started from is neither needed nor read
    build_cfg = {**cfg, "model": {**cfg["model"], "pretrained": "none"}}
    model = build_model_from_config(build_cfg, saved_classes if saved_classes is not None else num_classes)
    load_model_state(model, state["model"], str(checkpoint_path))
    return model.to(resolve_device(device) if isinstance(device, str) else device).eval(), cfg


def _short(items: List[str], limit: int = 8) -> str:
    shown = ", ".join(items[:limit])
    return shown + (f", ... ({len(items)} in all)" if len(items) > limit else "")


def capture_rng_states() -> Dict[str, Any]:
    states: Dict[str, Any] = {
        "python": _python_state_to_tensor(random.getstate()),
        "numpy": _numpy_state_to_tensor(np.random.get_state()),
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available():
        states["cuda"] = torch.cuda.get_rng_state_all()
    return states


def restore_rng_states(states: Mapping[str, Any]) -> None:
    random.setstate(_tensor_to_python_state(states["python"]))
    np.random.set_state(_tensor_to_numpy_state(states["numpy"]))
    torch.set_rng_state(states["torch"])
    if "cuda" in states and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(states["cuda"])


# weights_only loading accepts tensors and plain containers: encode the RNG tuples as such.
def _python_state_to_tensor(state: tuple) -> Dict[str, Any]:
    version, internal, gauss = state
    return {"version": version, "internal": torch.tensor(internal, dtype=torch.int64), "gauss": gauss}


def _tensor_to_python_state(data: Mapping[str, Any]) -> tuple:
    return (data["version"], tuple(int(x) for x in data["internal"].tolist()), data["gauss"])


def _numpy_state_to_tensor(state: tuple) -> Dict[str, Any]:
    name, keys, pos, has_gauss, cached = state
    return {"name": name, "keys": torch.from_numpy(keys.astype(np.int64)), "pos": int(pos),
            "has_gauss": int(has_gauss), "cached": float(cached)}


def _tensor_to_numpy_state(data: Mapping[str, Any]) -> tuple:
    keys = data["keys"].numpy().astype(np.uint32)
    return (data["name"], keys, data["pos"], data["has_gauss"], data["cached"])


def tensors_equal(a: Iterable[torch.Tensor], b: Iterable[torch.Tensor]) -> bool:
    return all(torch.equal(x, y) for x, y in zip(a, b))
