"""A name -> constructor registry shared by datasets, backbones, poolings, classifiers, losses, optimisers and
learning-rate schedules.

Configs refer to components by name; an unknown name is an error that lists the known ones and
suggests the closest, so a typo in a YAML file is caught at build time rather than deep in training.
A registry is also the one list of a config key's allowed values (`Registry(kind, config_key=...)`, read by the
config schema): registering a name makes the config accept it. The fixed option lists (CHOICES) and the keys of
free-form sections live here too, the one module every layer may import.
"""
from __future__ import annotations

import difflib
from typing import Any, Callable, Dict, Iterable, List, Optional, Tuple, TypeVar

T = TypeVar("T")


class Registry:
    """Maps names to classes or factory functions."""

    def __init__(self, kind: str, config_key: Optional[str] = None) -> None:
        """`config_key`: the config key whose allowed values are this registry's names (e.g. "optim.name")."""
        self.kind = kind
        self.config_key = config_key
        self._entries: Dict[str, Callable[..., Any]] = {}
        if config_key is not None:
            if config_key in _BY_CONFIG_KEY:
                raise KeyError(f"config key '{config_key}' already has a registry ({_BY_CONFIG_KEY[config_key]!r})")
            _BY_CONFIG_KEY[config_key] = self

    def register(self, name: Optional[str] = None) -> Callable[[T], T]:
        def decorator(obj: T) -> T:
            key = name or obj.__name__  # type: ignore[attr-defined]
            if key in self._entries:
                raise KeyError(f"{self.kind} '{key}' is already registered")
            self._entries[key] = obj  # type: ignore[assignment]
            return obj

        return decorator

    def unregister(self, name: str) -> None:
        """Remove `name` (a plug-in registered for a test or a session only)."""
        del self._entries[name]

    def unknown(self, name: Any) -> str:
        """The error text for a name that is not registered: the known names and the closest one."""
        known = self.names()
        close = difflib.get_close_matches(str(name), known, n=1)
        hint = f" Did you mean '{close[0]}'?" if close else ""
        return f"unknown {self.kind} '{name}'.{hint} Known: {', '.join(known)}"

    def get(self, name: str) -> Callable[..., Any]:
        if name not in self._entries:
            raise KeyError(self.unknown(name))
        return self._entries[name]

    def build(self, name: str, **kwargs: Any) -> Any:
        return self.get(name)(**kwargs)

    def names(self, sort: bool = True) -> List[str]:
        """The registered names, sorted, or in the order they were registered (`sort=False`)."""
        return sorted(self._entries) if sort else list(self._entries)

    def __contains__(self, name: str) -> bool:
        return name in self._entries

    def __repr__(self) -> str:
        return f"Registry({self.kind}: {', '.join(self.names())})"


# What a config may name, kept at the bottom of the stack so that every layer can read it and none above has to be
# named from below. Fixed option lists (the values the code that reads the key implements): the config refuses
# others when it is read, and the data and evaluation code read their lists from here, so the two never drift.
CHOICES: Dict[str, Tuple[Any, ...]] = {
    "data.on_error": ("raise", "skip"),
    "data.sampler": ("pk", "darkrank"),
    "data.pipeline": ("tensor", "albumentations"),
    "data.cache_hash": ("stat", "content"),
    "test.metric": ("euclidean", "cosine"),
    "test.ap": ("mean", "official"),
    "test.empty": ("skip", "zero"),
    "test.multi_query": (None, "mean", "max"),
    "test.protocol": ("market", "single-shot"),
    "schedule.step": ("iteration", "epoch"),
    "model.last_stride_mode": (None, "undilated", "dilated"),
}

# Pluggable config keys -> their registry, and free-form sections -> their keys. Both are filled by the layer that
# owns them when it is imported (`Registry(kind, config_key=...)`, `declare_section`), so this module names no module
# above it and reading a config imports nothing of models or the engine (a string table here did: reading a config
# that named optim.name imported reid.engine.optim and torch, also in the inference API). The commands import the
# owners before reading (reid.cli.commands); a key whose owner is not imported yet is checked when the owner builds
# it (`Registry.get`, `reid.data.transforms.resolve`), with the same list of names.
_BY_CONFIG_KEY: Dict[str, "Registry"] = {}
_SECTIONS: Dict[str, Tuple[str, ...]] = {}


def config_registry(key: str) -> Optional["Registry"]:
    """The registry whose names are the allowed values of the pluggable config key `key`, None until its owner
    (reid.models.heads for model.*, reid.engine.optim for optim.name / schedule.name) is imported."""
    return _BY_CONFIG_KEY.get(key)


def declare_section(section: str, keys: Iterable[str]) -> None:
    """Declare the keys a free-form config section accepts (its owner calls this when imported)."""
    keys = tuple(keys)
    if _SECTIONS.get(section, keys) != keys:
        raise KeyError(f"config section '{section}' is already declared with other keys")
    _SECTIONS[section] = keys


def section_keys(section: str) -> Optional[List[str]]:
    """The keys a free-form config section accepts, in their documented order; None until its owner is imported."""
    keys = _SECTIONS.get(section)
    return None if keys is None else list(keys)
