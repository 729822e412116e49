"""The layering the architecture promises, checked on the source: models and losses never import each other;
inference, the demo and export never import the engine (they load models through reid.builders/checkpoint)."""
from __future__ import annotations

import ast
from pathlib import Path
from typing import Iterator, Set

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "reid"


def _modules(target: str) -> Iterator[Path]:
    path = PACKAGE / target
    yield from (sorted(path.rglob("*.py")) if path.is_dir() else [path.with_suffix(".py")])


def imported(path: Path, root: Path = PACKAGE) -> Set[str]:
    """Absolute names of the reid modules a file imports (relative imports resolved, lazy ones included)."""
    package = ["reid", *path.relative_to(root).with_suffix("").parts][:-1]  # the package the file sits in
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package[: len(package) - node.level + 1]
                prefix = ".".join(base + ([node.module] if node.module else []))
            else:
                prefix = node.module or ""
            names.add(prefix)
            names.update(f"{prefix}.{a.name}" for a in node.names)
    return {n for n in names if n == "reid" or n.startswith("reid.")}


RULES = [("models", "reid.losses"), ("losses", "reid.models"), ("inference", "reid.engine"),
         ("demo", "reid.engine"), ("demo_page", "reid.engine"), ("demo_cache", "reid.engine"),
         ("demo_output", "reid.engine"), ("export", "reid.engine")]


@pytest.mark.parametrize("source,forbidden", RULES)
def test_layering(source, forbidden):
    offending = {f"{p.relative_to(PACKAGE.parent)} imports {n}" for p in _modules(source)
                 for n in imported(p) if n == forbidden or n.startswith(forbidden + ".")}
    assert not offending, "; ".join(sorted(offending))


def test_the_checker_sees_relative_and_lazy_imports(tmp_path):
    assert "reid.models.large_margin" in imported(PACKAGE / "models" / "heads.py")  # `from .large_margin import`
    probe = tmp_path / "reid" / "models" / "backbones" / "probe.py"
    probe.parent.mkdir(parents=True)
    probe.write_text("import torch\ndef f():\n    from ...losses import LOSSES\n    import reid.engine.trainer\n")
    names = imported(probe, root=tmp_path / "reid")
    assert {"reid.losses", "reid.losses.LOSSES", "reid.engine.trainer"} <= names and "torch" not in names
