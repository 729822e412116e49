"""A name -> constructor registry shared by datasets, backbones, poolings, classifiers, losses, optimisers and
learning-rate schedules.

Configs refer to components by name; an unknown name is an error that lists the known ones and
suggests the closest, so a typo in a YAML file is caught at build time rather than deep in training.
A registry is also the one list of a config key's allowed values (CONFIG_REGISTRIES, read by the config schema):
registering a name makes the config accept it.
"""
from __future__ import annotations

import difflib
import importlib
from typing import Any, Callable, Dict, List, Optional, TypeVar

T = TypeVar("T")


class Registry:
    """Maps names to classes or factory functions."""

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self._entries: Dict[str, Callable[..., Any]] = {}

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


# The registry behind each pluggable config key ("module:NAME") and the module that lists a free-form section's
# keys. The config layer sits below models and the engine and may import only reid.registry and reid.utils, so it
# finds them through these lookups instead of importing them; each module is imported on the first lookup only,
# so reading a config stays light (no torch) until such a key is checked.
CONFIG_REGISTRIES: Dict[str, str] = {
    "model.pooling": "reid.models.heads:POOLINGS",
    "model.classifier": "reid.models.heads:CLASSIFIERS",
    "optim.name": "reid.engine.optim:OPTIMIZERS",
    "schedule.name": "reid.engine.optim:SCHEDULES",
}
SECTION_KEYS: Dict[str, str] = {
    "transforms": "reid.data.transforms:DEFAULTS",  # pulls in albumentations: looked up only when the section is used
}


def _resolve(target: str) -> Any:
    module, name = target.split(":")
    return getattr(importlib.import_module(module), name)


def config_registry(key: str) -> Registry:
    """The registry whose names are the allowed values of the pluggable config key `key` (CONFIG_REGISTRIES)."""
    return _resolve(CONFIG_REGISTRIES[key])


def section_keys(section: str) -> List[str]:
    """The keys a free-form config section accepts (SECTION_KEYS), in their documented order."""
    return list(_resolve(SECTION_KEYS[section]))
