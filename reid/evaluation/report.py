"""`EvaluationResult`: CMC, mAP, mINP and bookkeeping; prints a table and serialises to JSON."""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, Union

import numpy as np

from ..utils import atomic_write


@dataclass
class EvaluationResult:
    cmc: np.ndarray  # cmc[r - 1] = fraction of queries whose first true match is within rank r
    mAP: float
    mINP: float
    num_queries: int
    num_skipped: int = 0
    info: Dict[str, Any] = field(default_factory=dict)

    def rank(self, k: int) -> float:
        if k < 1:
            raise ValueError(f"rank: k must be >= 1, got {k}")
        return float(self.cmc[min(k, len(self.cmc)) - 1]) if len(self.cmc) else 0.0

    def to_dict(self) -> Dict[str, Any]:
        return {"mAP": float(self.mAP), "mINP": float(self.mINP),
                **{f"rank{k}": self.rank(k) for k in (1, 5, 10, 20)},
                "cmc": [float(v) for v in self.cmc], "num_queries": int(self.num_queries),
                "num_skipped": int(self.num_skipped), **self.info}

    def table(self) -> str:
        head = f"{'Rank-1':>8} {'Rank-5':>8} {'Rank-10':>8} {'Rank-20':>8} {'mAP':>8} {'mINP':>8} {'queries':>8} {'skipped':>8}"
        vals = [self.rank(k) * 100 for k in (1, 5, 10, 20)] + [self.mAP * 100, self.mINP * 100]
        row = " ".join(f"{v:>7.2f}%" for v in vals) + f" {self.num_queries:>8d} {self.num_skipped:>8d}"
        return head + "\n" + row

    def __str__(self) -> str:
        return self.table()

    def save_json(self, path: Union[str, Path]) -> Path:
        path = Path(path)
        if path.is_dir():
            raise IsADirectoryError(f"cannot write results to {path}: it is a folder (give a file name)")
        with atomic_write(path) as handle:  # readable as the umask allows; a failed write leaves nothing
            json.dump(self.to_dict(), handle, indent=2)
        return path
