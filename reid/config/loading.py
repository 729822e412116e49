"""Experiment configuration: one schema with defaults, YAML files with `_base_` inheritance, CLI overrides.

A config file only states what differs from the defaults (or from its `_base_` file). Every key is checked
against the schema: an unknown key is an error that suggests the nearest valid one, and a value of the wrong
type is an error naming the key, the value and the expected type. The resolved config is saved next to every
run (`config.yaml`) so a run can always be reproduced and a resume can check nothing important changed.
"""
from __future__ import annotations

import copy
import difflib
from pathlib import Path
from typing import Any, Dict, Iterable, List, Mapping, Optional, Sequence, Tuple, Union

import yaml

from ..registry import section_keys
from ..utils import atomic_write
from .names import apply_aliases, canonical_key, find_config
from .schema import (CHOICES, DEFAULTS, OPEN_SECTIONS, RANGES, REGISTERED,  # noqa: F401 (re-exported)
                     RESUME_SAFE_PREFIXES, ConfigError, choices)

PathLike = Union[str, Path]


# transforms.* is a free-form section (not in RANGES): its numbers are checked here, so `height=0` is a config
# error naming the key rather than an OpenCV assertion at the first image.
TRANSFORM_RANGES = {f"transforms.{name}": bounds for name, bounds in (
    ("height", (1, None)), ("width", (1, None)), ("pad", (0, None)), ("hflip", (0, 1)), ("color_jitter", (0, 1)),
    ("random_erasing", (0, 1)))}


def _check_range(key: str, value: Any, ranges: Mapping[str, Any] = RANGES) -> None:
    if key not in ranges or value is None or isinstance(value, bool) or not isinstance(value, (int, float)):
        return
    low, high = ranges[key]
    if value != value or (low is not None and value < low) or (high is not None and value > high):
        expected = f">= {low}" if high is None else f"<= {high}" if low is None else f"in [{low}, {high}]"
        raise ConfigError(f"config key '{key}': expected a number {expected}, got {value!r}")


def check_transforms(config: Mapping[str, Any]) -> None:
    """Refuse unknown `transforms.*` keys when the config is read (a free-form section: its keys are those of
    reid.data.transforms.DEFAULTS, declared in reid.registry when reid.data is imported; before that,
    reid.data.transforms.resolve refuses them when the pipeline is built). Value types and ranges are checked here
    either way."""
    given = config.get("transforms") or {}
    if not given:
        return
    known = section_keys("transforms")
    if known is None:
        known = list(given)  # the owner is not imported: names are checked when it builds, values below

    for name in given:
        if name not in known:
            close = difflib.get_close_matches(str(name), known, n=1, cutoff=0.5)
            hint = f"; did you mean 'transforms.{close[0]}'?" if close else ""
            raise ConfigError(f"unknown config key 'transforms.{name}'{hint} (valid: {', '.join(known)})")
        value = given[name]
        numeric = not isinstance(value, bool) and isinstance(value, (int, float))
        if f"transforms.{name}" in TRANSFORM_RANGES and not numeric:
            raise ConfigError(f"config key 'transforms.{name}': expected a number, got {value!r}")
        if name in ("height", "width", "pad") and isinstance(value, float) and not value.is_integer():
            raise ConfigError(f"config key 'transforms.{name}': expected a whole number of pixels, got {value!r}")
        _check_range(f"transforms.{name}", value, TRANSFORM_RANGES)


def _type_name(value: Any) -> str:
    return type(value).__name__


def _check_value(key: str, value: Any, default: Any) -> Any:
    """Check `value` against the default's type (ints are accepted where floats are expected)."""
    allowed = choices(key)  # a registry's names for pluggable keys (model.pooling, optim.name, ...)
    if allowed is not None:
        if value not in allowed:
            options = ", ".join("null" if c is None else str(c) for c in allowed)
            close = difflib.get_close_matches(str(value), [str(c) for c in allowed if c is not None], n=1)
            hint = f"; did you mean '{close[0]}'?" if close else ""
            raise ConfigError(f"config key '{key}': value {value!r} is not one of: {options}{hint}")
        return value
    if default is None or value is None:
        return value
    if isinstance(default, bool):
        if not isinstance(value, bool):
            raise ConfigError(f"config key '{key}': expected a boolean (true/false), got {value!r} ({_type_name(value)})")
    elif isinstance(default, float):
        value = _as_number(value)
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ConfigError(f"config key '{key}': expected a number, got {value!r} ({_type_name(value)})")
        return float(value)
    elif isinstance(default, int):
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"config key '{key}': expected an integer, got {value!r} ({_type_name(value)})")
    elif isinstance(default, str):
        if not isinstance(value, str):
            raise ConfigError(f"config key '{key}': expected a string, got {value!r} ({_type_name(value)})")
    elif isinstance(default, list):
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"config key '{key}': expected a list, got {value!r} ({_type_name(value)})")
        return list(value)
    elif isinstance(default, dict):
        if not isinstance(value, dict):
            raise ConfigError(f"config key '{key}': expected a mapping, got {value!r} ({_type_name(value)})")
    return value


def _as_number(value: Any) -> Any:
    """YAML 1.1 reads `1e-3` (no dot) as a string; accept it where a number is expected."""
    if isinstance(value, str):
        try:
            return float(value)
        except ValueError:
            return value
    return value


def _all_keys(tree: Mapping[str, Any], prefix: str = "") -> List[str]:
    keys = []
    for name, value in tree.items():
        full = f"{prefix}{name}"
        keys.append(full)
        if isinstance(value, dict) and full not in OPEN_SECTIONS:
            keys.extend(_all_keys(value, full + "."))
    return keys


def _unknown_key_error(key: str, source: str) -> ConfigError:
    close = difflib.get_close_matches(key, _all_keys(DEFAULTS), n=1, cutoff=0.5)
    hint = f"; did you mean '{close[0]}'?" if close else ""
    return ConfigError(f"unknown config key '{key}' in {source}{hint}")


def merge(base: Dict[str, Any], update: Mapping[str, Any], source: str = "config", prefix: str = "") -> Dict[str, Any]:
    """Return `base` updated recursively with `update`, validating every key against the schema."""
    result = copy.deepcopy(base)
    for name, value in update.items():
        key = f"{prefix}{name}"
        if not isinstance(name, str):
            raise ConfigError(f"config key {name!r} in {source} must be a string")
        if name not in result:
            raise _unknown_key_error(key, source)
        current = result[name]
        if key in OPEN_SECTIONS:
            if value is not None and not isinstance(value, (dict, list)):
                raise ConfigError(f"config key '{key}' in {source}: expected a mapping or list, got {value!r}")
            result[name] = copy.deepcopy(value)
        elif isinstance(current, dict) and isinstance(value, dict):
            result[name] = merge(current, value, source, key + ".")
        else:
            default = _lookup(DEFAULTS, key)
            result[name] = _check_value(key, value, default)
            _check_range(key, result[name])
    return result


def _lookup(tree: Mapping[str, Any], key: str) -> Any:
    node: Any = tree
    for part in key.split("."):
        node = node[part]
    return node


def _read_yaml(path: Path) -> Dict[str, Any]:
    if not path.is_file():
        raise ConfigError(f"config file not found: {path}")
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        raise ConfigError(f"config file {path} is not valid YAML: {exc}") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"config file {path} must hold a mapping at top level, got {_type_name(data)}")
    return data


def _deep_update(base: Dict[str, Any], update: Mapping[str, Any], prefix: str = "") -> Dict[str, Any]:
    """Merge raw (unvalidated) YAML mappings; open sections and leaves are replaced, sections merged."""
    result = copy.deepcopy(base)
    for name, value in update.items():
        key = f"{prefix}{name}"
        if isinstance(value, dict) and isinstance(result.get(name), dict) and key not in OPEN_SECTIONS:
            result[name] = _deep_update(result[name], value, key + ".")
        else:
            result[name] = copy.deepcopy(value)
    return result


def _raw_chain(path: Path, seen: Tuple[Path, ...] = ()) -> Dict[str, Any]:
    """A YAML file merged over its `_base_` files (each validated against the schema on its own)."""
    path = path.resolve()
    if path in seen:
        chain = " -> ".join(str(p) for p in seen + (path,))
        raise ConfigError(f"circular _base_ chain: {chain}")
    data = _read_yaml(path)
    bases = data.pop("_base_", None)
    data = apply_aliases(data, str(path))  # torchreid/fast-reid names moved to ours, or explained
    merge(DEFAULTS, data, str(path))  # validate this file's own keys and values, naming it in errors
    raw: Dict[str, Any] = {}
    if bases is not None:
        base_list = [bases] if isinstance(bases, str) else bases
        if not isinstance(base_list, list) or not all(isinstance(b, str) for b in base_list):
            raise ConfigError(f"'_base_' in {path} must be a file name or a list of them, got {bases!r}")
        for base in base_list:
            raw = _deep_update(raw, _raw_chain(path.parent / base, seen + (path,)))
    return _deep_update(raw, data)


def _resolve_file(path: Path) -> Dict[str, Any]:
    return merge(DEFAULTS, _raw_chain(path), str(path))


def parse_override(text: str) -> Tuple[str, Any]:
    """Parse a command-line override `key.sub=value`; the value is read as YAML (so 1e-3, true, [1,2] work)."""
    if "=" not in text:
        raise ConfigError(f"override '{text}' must look like key.sub=value")
    key, raw = text.split("=", 1)
    key = key.strip()
    if not key:
        raise ConfigError(f"override '{text}' has an empty key")
    try:
        value = yaml.safe_load(raw) if raw.strip() else ""
    except yaml.YAMLError:
        value = raw
    if isinstance(value, str):
        number = _as_number(value)
        value = number if not isinstance(number, float) or value.strip().lower() not in ("nan", "inf", "-inf") else value
    return key, value


def _nest(key: str, value: Any) -> Dict[str, Any]:
    node: Dict[str, Any] = {}
    root = node
    parts = key.split(".")
    for part in parts[:-1]:
        node[part] = {}
        node = node[part]
    node[parts[-1]] = value
    return root


def load_config(path: Optional[PathLike] = None, overrides: Sequence[str] = (),
                base: Optional[Mapping[str, Any]] = None, base_source: str = "config") -> Dict[str, Any]:
    """Resolve defaults <- YAML file (with its `_base_` chain) <- `base` mapping <- `key=value` overrides.

    `path` is a file or a packaged config name ('sn/market1501'); `base` is e.g. the config stored in a
    checkpoint (named `base_source` in errors)."""
    config = _resolve_file(find_config(path)) if path is not None else copy.deepcopy(DEFAULTS)
    if base is not None:
        config = merge(config, apply_aliases(base, base_source), base_source)
    for text in overrides:
        key, value = parse_override(text)
        key = canonical_key(key, f"override '{text}'")
        head = key.split(".")
        # An override inside an open section replaces just that leaf (e.g. data.kwargs.split_id=3).
        for depth in range(1, len(head)):
            section = ".".join(head[:depth])
            if section in OPEN_SECTIONS:
                container = _lookup(config, section)
                if not isinstance(container, dict):
                    raise ConfigError(f"override '{text}': '{section}' is not a mapping")
                _set_nested(container, head[depth:], value)
                break
        else:
            config = merge(config, _nest(key, value), f"override '{text}'")
    check_transforms(config)
    return config


def _set_nested(container: Dict[str, Any], parts: Sequence[str], value: Any) -> None:
    for part in parts[:-1]:
        container = container.setdefault(part, {})
    container[parts[-1]] = value


def save_config(config: Mapping[str, Any], path: PathLike) -> None:
    """Write the resolved config as YAML (atomically, so a crash never leaves half a file)."""
    with atomic_write(path) as handle:
        handle.write(yaml.safe_dump(dict(config), sort_keys=False))


def flatten(tree: Mapping[str, Any], prefix: str = "") -> Dict[str, Any]:
    flat: Dict[str, Any] = {}
    for name, value in tree.items():
        key = f"{prefix}{name}"
        if isinstance(value, dict) and value and key not in OPEN_SECTIONS:
            flat.update(flatten(value, key + "."))
        else:
            flat[key] = value
    return flat


def resume_conflicts(saved: Mapping[str, Any], current: Mapping[str, Any]) -> List[str]:
    """Keys whose change makes a saved training state inconsistent with the current config."""
    old, new = flatten(saved), flatten(current)
    changed = []
    for key in sorted(set(old) | set(new)):
        if any(key == p or key.startswith(p if p.endswith(".") else p + ".") for p in RESUME_SAFE_PREFIXES):
            continue
        if old.get(key) != new.get(key):
            changed.append(f"{key}: {old.get(key)!r} -> {new.get(key)!r}")
    return changed


def iter_config_files(folder: PathLike) -> Iterable[Path]:
    return sorted(Path(folder).glob("**/*.yaml"))
