"""Optional dependencies go through `reid.utils.optional`: one wording for a missing one (naming what needs it and
the extra that installs it), a fallback where the code has one, and no other module imports them itself."""
from __future__ import annotations

import ast
import sys
from pathlib import Path

import pytest

from reid.utils import optional

PACKAGE = Path(optional.__file__).resolve().parents[1]


def test_a_missing_module_is_one_error_naming_the_purpose_and_the_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "faiss", None)  # as if not installed
    with pytest.raises(ImportError) as info:
        optional.import_faiss("re-ranking with knn_backend='faiss'")
    assert str(info.value) == ("re-ranking with knn_backend='faiss' needs faiss: pip install 'reid-toolkit[faiss]' "
                               "(from a checkout: pip install -e \".[faiss]\") (or pip install faiss-cpu)")
    assert optional.faiss_available() is False and optional.available("faiss") is False
    with pytest.raises(ValueError, match=r"^the plot needs matplotlib: pip install 'reid-toolkit\[plot\]'"):
        monkeypatch.setitem(sys.modules, "matplotlib", None)
        optional.require("matplotlib", "the plot", error=ValueError)
    assert optional.missing_message("numba", "the compiled loops") == "the compiled loops needs numba: pip install numba"


def test_present_modules_are_returned_and_absent_ones_are_none(monkeypatch):
    import json

    assert optional.require("json", "x") is json and optional.optional_module("json") is json
    assert optional.available("json") is True
    assert optional.optional_module("reid_no_such_module_anywhere") is None
    assert optional.available("reid_no_such_module_anywhere") is False
    monkeypatch.setitem(sys.modules, "numba", None)
    assert optional.optional_module("numba") is None


def test_the_backbones_say_which_extra_installs_timm(monkeypatch):
    from reid.models.backbones import mobile, timm_backbone

    monkeypatch.setitem(sys.modules, "timm", None)
    assert timm_backbone.timm_available() is False
    with pytest.raises(ValueError, match=r"^model.backbone 'timm/...' needs timm: pip install 'reid-toolkit\[timm\]'"):
        timm_backbone._timm()
    with pytest.raises(ValueError, match=r"MobileNetV2 backbones \(timm's architectures\) needs timm: "
                                         r"pip install 'reid-toolkit\[imagenet\]'.*\(or pip install timm\)$"):
        mobile._timm()


def test_no_other_module_imports_an_optional_dependency():
    found = []
    for path in sorted(PACKAGE.rglob("*.py")):
        if path == Path(optional.__file__).resolve():
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            names = ([a.name for a in node.names] if isinstance(node, ast.Import)
                     else [node.module or ""] if isinstance(node, ast.ImportFrom) and not node.level else [])
            found += [f"{path.relative_to(PACKAGE)}: {n}" for n in names if n.split(".")[0] in optional.EXTRAS]
    assert found == []
