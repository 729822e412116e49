"""A name -> constructor registry shared by datasets, backbones and losses.

Configs refer to components by name; an unknown name is an error that lists the known ones and
suggests the closest, so a typo in a YAML file is caught at build time rather than deep in training.
"""
from __future__ import annotations

import difflib
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

    def get(self, name: str) -> Callable[..., Any]:
        if name not in self._entries:
            known = sorted(self._entries)
            close = difflib.get_close_matches(name, known, n=1)
            hint = f" Did you mean '{close[0]}'?" if close else ""
            raise KeyError(f"unknown {self.kind} '{name}'.{hint} Known: {', '.join(known)}")
        return self._entries[name]

    def build(self, name: str, **kwargs: Any) -> Any:
        return self.get(name)(**kwargs)

    def names(self) -> List[str]:
        return sorted(self._entries)

    def __contains__(self, name: str) -> bool:
        return name in self._entries

    def __repr__(self) -> str:
        return f"Registry({self.kind}: {', '.join(self.names())})"
