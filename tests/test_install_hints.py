"""Every install hint names the distribution we publish (reid-toolkit), never the registry's unrelated `reid`."""
from __future__ import annotations

import re
from pathlib import Path

from reid.utils import DISTRIBUTION

REPO = Path(__file__).resolve().parents[1]
# `pip install reid`, `pip install 'reid[faiss]'`, or a bare `reid[timm]`: each installs the other project
WRONG = re.compile(r"pip install\s+['\"]?reid(?=$|[\s'\"\[])|(?<![\w./-])reid\[")


def _texts():
    for pattern in ("reid/**/*.py", "tools/*.py", "*.md", "datasets/*.md", "setup.py"):
        for path in sorted(REPO.glob(pattern)):
            yield path, path.read_text(encoding="utf-8")


def test_the_pattern_catches_the_wrong_names():
    assert WRONG.search("pip install 'reid[faiss]'") and WRONG.search("needs pip install reid")
    assert WRONG.search('pip install "reid[timm]"') and WRONG.search("(reid[onnx])")
    assert not WRONG.search("pip install 'reid-toolkit[faiss]'") and not WRONG.search('pip install -e ".[faiss]"')
    assert not WRONG.search("pip install reid-toolkit")


def test_no_hint_installs_the_registrys_reid():
    offenders = [f"{path.relative_to(REPO)}:{text.count(chr(10), 0, m.start()) + 1}: {m.group(0)}"
                 for path, text in _texts() for m in WRONG.finditer(text)]
    assert offenders == []
