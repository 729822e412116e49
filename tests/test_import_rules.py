"""The layering the architecture promises, checked on the source of every module (lazy imports inside functions
included, relative imports resolved): one table of which layer may import which, and no cycle between packages.

A module's layer is its package under reid (`reid.engine.trainer` -> `reid.engine`) or, for a loose module, the
module itself (`reid.builders`). ONLY lists everything a layer may import (besides itself); NEVER lists what a
layer must not import. The checker is tested on a made-up graph, so a rule that can never fail is caught too.
"""
from __future__ import annotations

import ast
import os
import subprocess
import sys
from pathlib import Path
from typing import Dict, Iterable, Iterator, List, Mapping, Set

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "reid"

# layer -> the only reid modules it may import besides its own (a prefix allows everything below it)
ONLY: Dict[str, Set[str]] = {
    "reid.utils": set(),
    "reid.registry": set(),
    "reid.version": set(),
    "reid.config": {"reid.utils", "reid.registry"},
    "reid.data": {"reid.registry", "reid.utils"},
    "reid.models": {"reid.registry", "reid.utils"},
    "reid.losses": {"reid.registry", "reid.utils"},
    "reid.evaluation": {"reid.config.schema", "reid.utils"},
}
_APPLICATION = {"reid.engine", "reid.inference", "reid.demo", "reid.cli"}
# layer -> reid modules it must never import
NEVER: Dict[str, Set[str]] = {
    "reid.builders": _APPLICATION,  # below the engine and inference, which both build models through it
    "reid.checkpoint": _APPLICATION,
    "reid.engine": {"reid.inference", "reid.demo", "reid.cli"},
    "reid.inference": {"reid.engine", "reid.demo", "reid.cli"},  # an application needs no training code
    "reid.demo": {"reid.engine", "reid.cli"},
}
# layers with no rule beyond "no cycle": the root package, the commands (top of the stack), the drawing helpers,
# and the one-release aliases of moved modules (reid.config_schema, ...)
FREE = {"reid", "reid.cli", "reid.visualize"}
SHIMS = {"reid.demo_cache", "reid.demo_output", "reid.demo_page", "reid.config_schema", "reid.config_names",
         "reid.search_backends", "reid.export", "reid.cli_evaluate", "reid.cli_export", "reid.cli_dataset",
         "reid.outputs", "reid.progress"}


def _modules(target: str) -> Iterator[Path]:
    path = PACKAGE / target
    yield from (sorted(path.rglob("*.py")) if path.is_dir() else [path.with_suffix(".py")])


def module_name(path: Path, root: Path = PACKAGE) -> str:
    parts = ["reid", *path.relative_to(root).with_suffix("").parts]
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


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


def import_graph(root: Path = PACKAGE) -> Dict[str, Set[str]]:
    """Every module under `root` -> the reid names it imports."""
    return {module_name(p, root): imported(p, root) for p in sorted(root.rglob("*.py"))}


def layer(name: str) -> str:
    """`reid.engine.trainer` -> `reid.engine`; `reid.builders.build_model` -> `reid.builders`; `reid` -> `reid`."""
    return ".".join(name.split(".")[:2])


def _under(name: str, prefixes: Iterable[str]) -> bool:
    return any(name == p or name.startswith(p + ".") for p in prefixes)


def forbidden_edges(graph: Mapping[str, Set[str]]) -> List[str]:
    """'<module> imports <name>' for every import the ONLY/NEVER table refuses."""
    found = []
    for module, names in sorted(graph.items()):
        own = layer(module)
        for name in sorted(names):
            if name == "reid" or layer(name) == own:
                continue
            if (own in ONLY and not _under(name, ONLY[own])) or _under(name, NEVER.get(own, ())):
                found.append(f"{module} imports {name}")
    return found


def layer_cycles(graph: Mapping[str, Set[str]]) -> List[List[str]]:
    """The groups of layers that import each other in a circle (strongly connected components of size > 1)."""
    edges: Dict[str, Set[str]] = {}
    for module, names in graph.items():
        edges.setdefault(layer(module), set()).update(
            layer(n) for n in names if n != "reid" and layer(n) != layer(module))
    index: Dict[str, int] = {}
    low: Dict[str, int] = {}
    stack: List[str] = []
    cycles: List[List[str]] = []

    def visit(node: str) -> None:  # Tarjan's algorithm
        index[node] = low[node] = len(index)
        stack.append(node)
        for nxt in sorted(edges.get(node, ())):
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            group = []
            while True:
                member = stack.pop()
                group.append(member)
                if member == node:
                    break
            if len(group) > 1:
                cycles.append(sorted(group))

    for node in sorted(edges):
        if node not in index:
            visit(node)
    return sorted(cycles)


GRAPH = import_graph()


@pytest.mark.parametrize("module", sorted(GRAPH))
def test_every_module_keeps_the_layer_rules(module):
    assert forbidden_edges({module: GRAPH[module]}) == []


def test_no_cycle_between_packages_or_loose_modules():
    assert layer_cycles(GRAPH) == []


def test_every_layer_has_a_rule():
    layers = {layer(m) for m in GRAPH}
    assert layers - set(ONLY) - set(NEVER) - FREE - SHIMS == set()
    assert {"reid.config", "reid.engine", "reid.inference", "reid.demo", "reid.cli", "reid.utils"} <= layers


def test_the_registries_the_config_reads_are_declared_by_their_owners():
    # the config layer finds the registries of models and the engine, and the transforms keys, through what those
    # layers declared in reid.registry when imported: no module name, no string edge
    from reid.config.schema import REGISTERED, registry
    from reid.data.transforms import DEFAULTS as TRANSFORM_DEFAULTS
    from reid.engine.optim import OPTIMIZERS, SCHEDULES
    from reid.models.heads import CLASSIFIERS, POOLINGS
    from reid.registry import section_keys

    assert [registry(k) for k in sorted(REGISTERED)] == [CLASSIFIERS, POOLINGS, OPTIMIZERS, SCHEDULES]
    assert [registry(k).config_key for k in sorted(REGISTERED)] == sorted(REGISTERED)
    assert section_keys("transforms") == list(TRANSFORM_DEFAULTS) and len(TRANSFORM_DEFAULTS) > 5


def test_reading_a_config_loads_neither_models_nor_the_engine(tmp_path):
    # a fresh interpreter: what the config layer imports on its own (the string table imported reid.engine.optim and
    # torch as soon as optim.name was checked); a name whose owner is not loaded is refused when the owner builds it
    code = (
        "import sys\n"
        "from reid.config import load_config\n"
        "cfg = load_config(None, ['optim.name=adma', 'model.pooling=gem', 'transforms.height=64'])\n"
        "print(sorted(m for m in ('torch', 'reid.engine.optim', 'reid.models', 'reid.data') if m in sys.modules))\n"
        "from reid.engine.optim import build_optimizer\n"
        "import torch\n"
        "try:\n"
        "    build_optimizer(torch.nn.Linear(1, 1), cfg['optim'])\n"
        "except ValueError as error:\n"
        "    print(error)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=tmp_path,
                         env={**os.environ, "PYTHONPATH": str(PACKAGE.parent)})
    assert out.returncode == 0, out.stderr
    loaded, message = out.stdout.splitlines()
    assert loaded == "[]"
    assert "optim.name" in message and "'adma'" in message and "adam" in message


def test_a_config_key_or_section_is_declared_once():
    from reid.registry import Registry, declare_section

    with pytest.raises(KeyError, match="config key 'optim.name' already has a registry"):
        Registry("optimiser", config_key="optim.name")
    with pytest.raises(KeyError, match="config section 'transforms' is already declared with other keys"):
        declare_section("transforms", ["height"])


def test_the_checker_fails_on_a_cycle_and_a_forbidden_edge():
    fake = {
        "reid.config.loading": {"reid.utils", "reid.data.transforms", "reid.data.transforms.DEFAULTS"},
        "reid.data.transforms": {"reid.config", "reid.config.loading"},  # a circle: config -> data -> config
        "reid.engine.trainer": {"reid.inference.extractor", "reid.builders"},  # engine must not use inference
        "reid.builders": {"reid.config"},
        "reid.inference.extractor": {"reid.builders"},
        "reid.evaluation.knn": {"reid.config.schema", "reid.evaluation.distance"},  # allowed: no finding
    }
    assert forbidden_edges(fake) == [
        "reid.config.loading imports reid.data.transforms",
        "reid.config.loading imports reid.data.transforms.DEFAULTS",
        "reid.data.transforms imports reid.config",
        "reid.data.transforms imports reid.config.loading",
        "reid.engine.trainer imports reid.inference.extractor",
    ]
    assert layer_cycles(fake) == [["reid.config", "reid.data"]]
    fake["reid.builders"] = {"reid.engine.trainer"}  # builders -> engine (-> inference) -> builders
    assert layer_cycles(fake) == [["reid.builders", "reid.engine", "reid.inference"], ["reid.config", "reid.data"]]
    assert "reid.builders imports reid.engine.trainer" in forbidden_edges(fake)


def test_the_checker_sees_relative_and_lazy_imports(tmp_path):
    assert "reid.models.large_margin" in imported(PACKAGE / "models" / "heads.py")  # `from .large_margin import`
    probe = tmp_path / "reid" / "models" / "backbones" / "probe.py"
    probe.parent.mkdir(parents=True)
    probe.write_text("import torch\ndef f():\n    from ...losses import LOSSES\n    import reid.engine.trainer\n")
    names = imported(probe, root=tmp_path / "reid")
    assert names == {"reid.losses", "reid.losses.LOSSES", "reid.engine.trainer"}
    assert module_name(probe, tmp_path / "reid") == "reid.models.backbones.probe"
    assert forbidden_edges({"reid.models.backbones.probe": names}) == [
        "reid.models.backbones.probe imports reid.engine.trainer",
        "reid.models.backbones.probe imports reid.losses", "reid.models.backbones.probe imports reid.losses.LOSSES"]
