"""The common representation of a re-ID dataset: `Sample` lists for train / query / gallery."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional, Sequence

JUNK_PID = -1  # Market-1501 junk boxes: never trained on, removed from every ranking
BACKGROUND_PID = 0  # Market-1501 "0000": false detections kept in the gallery as negatives
DISTRACTOR_PID = -2  # 500k distractors appended to the gallery: negatives for every query


class DatasetError(ValueError):
    """A dataset file or folder that does not follow the expected release format."""


@dataclass
class Sample:
    path: str
    pid: int
    camid: int
    extras: Dict[str, Any] = field(default_factory=dict)


class ReIDDataset:
    """`train`, `query`, `gallery` lists of samples; train ids relabelled 0..C-1 (original id in extras)."""

    name = "dataset"
    has_cameras = True
    # Shown as c<camid + camera_base>: adapters store 0-based ids for the file names' c1, c2, ... (Market-1501),
    # so every rank list says the camera the file name says.
    camera_base = 1

    def __init__(self, train: List[Sample], query: List[Sample], gallery: List[Sample],
                 query_groups: Optional[List[List[str]]] = None) -> None:
        self.train = relabel(train)
        self.query = query
        self.gallery = gallery
        self.query_groups = query_groups

    @property
    def num_train_pids(self) -> int:
        return len({s.pid for s in self.train if s.pid >= 0})

    @property
    def num_train_cams(self) -> int:
        return len({s.camid for s in self.train})

    def counts(self) -> Dict[str, Any]:
        out: Dict[str, Any] = {}
        for split in ("train", "query", "gallery"):
            samples: Sequence[Sample] = getattr(self, split)
            out[split] = {
                "images": len(samples),
                "ids": len({s.pid for s in samples if s.pid > 0 or (split == "train" and s.pid >= 0)}),
                "cameras": len({s.camid for s in samples}),
            }
        out["gallery"]["junk"] = sum(s.pid == JUNK_PID for s in self.gallery)
        out["gallery"]["background"] = sum(s.pid == BACKGROUND_PID for s in self.gallery)
        out["gallery"]["distractors"] = sum(s.pid == DISTRACTOR_PID for s in self.gallery)
        return out

    def summary(self) -> str:
        c = self.counts()
        lines = [f"{self.name}", f"  {'split':<8} {'ids':>6} {'images':>8} {'cameras':>8}"]
        for split in ("train", "query", "gallery"):
            lines.append(f"  {split:<8} {c[split]['ids']:>6} {c[split]['images']:>8} {c[split]['cameras']:>8}")
        g = c["gallery"]
        extra = [f"{g[k]} {k}" for k in ("junk", "background", "distractors") if g[k]]
        if extra:
            lines.append("  gallery includes " + ", ".join(extra))
        return "\n".join(lines)

    def __repr__(self) -> str:
        return self.summary()


def relabel(samples: List[Sample]) -> List[Sample]:
    """Map training ids to 0..C-1 in sorted order of the original ids, keeping the original in extras."""
    ids = sorted({s.pid for s in samples if s.pid >= 0})
    mapping = {pid: i for i, pid in enumerate(ids)}
    out = []
    for s in samples:
        if s.pid < 0:
            continue  # junk is never trained on
        extras = dict(s.extras)
        extras.setdefault("orig_pid", s.pid)
        out.append(Sample(s.path, mapping[s.pid], s.camid, extras))
    return out
