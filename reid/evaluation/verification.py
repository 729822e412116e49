"""Verification: is this pair the same person? Distances of same-id and different-id pairs, the ROC, TAR at a
given FAR and the distance threshold that achieves it.

Pairs follow the ranking protocol exactly (`gallery_roles`, built on the evaluator's own `own_id_items`): a
query's true matches are its positives; gallery items of another id are negatives (background, pid 0, and
distractors, pid -2, included); same-id same-camera items, junk (pid -1) and the query itself are in neither set,
as they are in no ranking. The same roles mark rank lists (tools/test.py, the demo), so a picture never disagrees
with the numbers.

A pair is accepted as "same person" when its distance is strictly below the threshold. The threshold for a FAR f
is the (k+1)-th smallest negative distance with k = floor(f * negatives): at most k negatives fall below it.
"""
from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple, Union

import numpy as np
import torch

from ..utils import atomic_write
from .distance import check_features, pairwise_distance
from .metrics import JUNK, own_id_items

NEGATIVE, MATCH, SAME_CAMERA, JUNK_ID, SELF = 0, 1, 2, 3, 4
ROLE_NAMES = {NEGATIVE: "different id", MATCH: "true match", SAME_CAMERA: "same id, same camera (ignored)",
              JUNK_ID: "junk (ignored)", SELF: "the query itself (ignored)"}
DEFAULT_FARS = (1e-2, 1e-3, 1e-4)
# the name a verification report gives each test.metric's distance; a threshold file is used only with the distance
# it was chosen for (the demo compares these names), so it is written here once
DISTANCE_NAMES = {"euclidean": "squared euclidean", "cosine": "cosine"}


def query_positions(query_paths: Sequence[str], gallery_paths: Sequence[str]) -> np.ndarray:
    """Each query's index in the gallery (the same path), -1 where it is not there: the `query_in_gallery` that
    `evaluate` and `gallery_roles` take for data without camera ids, where only the query itself is left out."""
    position = {p: i for i, p in enumerate(gallery_paths)}
    return np.array([position.get(p, -1) for p in query_paths], dtype=np.int64)


def gallery_roles(q_pids: np.ndarray, g_pids: np.ndarray, q_camids: Optional[np.ndarray] = None,
                  g_camids: Optional[np.ndarray] = None,
                  query_in_gallery: Optional[np.ndarray] = None) -> np.ndarray:
    """(Q, G) int8 role of every gallery item for every query, as the evaluation protocol treats it.

    Without camera ids (both None) only the query itself is ignored, as in `reid.evaluation.evaluate`.
    """
    q_pids = np.asarray(q_pids, dtype=np.int64).ravel()
    g_pids = np.asarray(g_pids, dtype=np.int64).ravel()
    if (q_camids is None) != (g_camids is None):
        raise ValueError("gallery_roles: give camera ids for both query and gallery, or for neither")
    qc = None if q_camids is None else np.asarray(q_camids, dtype=np.int64).ravel()
    gc = None if g_camids is None else np.asarray(g_camids, dtype=np.int64).ravel()
    qig = None if query_in_gallery is None else np.asarray(query_in_gallery, dtype=np.int64).ravel()
    roles = np.zeros((len(q_pids), len(g_pids)), dtype=np.int8)
    roles[:, g_pids == JUNK] = JUNK_ID
    same_ptr, same_idx, pos_ptr, pos_idx = own_id_items(q_pids, g_pids, qc, gc, qig)
    # every own-id item is excluded unless the protocol kept it as a true match
    roles[np.repeat(np.arange(len(q_pids)), np.diff(same_ptr)), same_idx] = SAME_CAMERA
    roles[np.repeat(np.arange(len(q_pids)), np.diff(pos_ptr)), pos_idx] = MATCH
    if qig is not None:
        rows = np.flatnonzero(qig >= 0)
        roles[rows, qig[rows]] = SELF
    roles[q_pids == JUNK] = JUNK_ID  # a junk query is in no ranking: none of its pairs count
    return roles


def in_ranking(roles: np.ndarray) -> np.ndarray:
    """The rank-list mask: True for the gallery items a query's ranking holds (its true matches and the other ids'
    items), False for those the protocol leaves out (same id and camera, junk, the query itself)."""
    roles = np.asarray(roles)
    return (roles == MATCH) | (roles == NEGATIVE)


def pair_distances(qf: torch.Tensor, gf: torch.Tensor, q_pids: np.ndarray, g_pids: np.ndarray,
                   q_camids: Optional[np.ndarray] = None, g_camids: Optional[np.ndarray] = None,
                   query_in_gallery: Optional[np.ndarray] = None, metric: str = "euclidean", chunk: int = 256,
                   max_negatives: int = 20_000_000, seed: int = 0) -> Tuple[np.ndarray, np.ndarray, int]:
    """Distances of every positive pair and of the negative pairs, streamed over query blocks.

    Negatives beyond `max_negatives` are sampled uniformly (seeded), so memory stays bounded on large galleries;
    returns (positives, negatives, total number of negative pairs).
    """
    qf, gf = check_features("query", torch.as_tensor(qf)), check_features("gallery", torch.as_tensor(gf))
    q_pids, g_pids = np.asarray(q_pids), np.asarray(g_pids)
    if len(q_pids) != len(qf) or len(g_pids) != len(gf):
        raise ValueError(f"pair_distances: {len(qf)} query / {len(gf)} gallery features but {len(q_pids)} / "
                         f"{len(g_pids)} ids")
    # negatives per query = the gallery's non-junk items minus those of its own id (junk queries: none); counted
    # up front so the sampling rate is known before the first block
    same = own_id_items(q_pids, g_pids, None, None, None)[0]
    total_neg = int(np.where(q_pids == JUNK, 0, int((g_pids != JUNK).sum()) - np.diff(same)).sum())
    rate = min(1.0, max_negatives / total_neg) if total_neg else 1.0
    rng = np.random.default_rng(seed)
    chunk = max(1, min(chunk, (1 << 26) // max(1, len(g_pids))))  # roles and distances of a block stay ~0.5 GB
    pos, neg = [], []
    for s in range(0, len(qf), chunk):
        sl = slice(s, s + chunk)
        roles = gallery_roles(q_pids[sl], g_pids, None if q_camids is None else np.asarray(q_camids)[sl], g_camids,
                              None if query_in_gallery is None else np.asarray(query_in_gallery)[sl])
        d = pairwise_distance(qf[sl].float(), gf.float(), metric).cpu().numpy().astype(np.float64)
        pos.append(d[roles == MATCH])
        n = d[roles == NEGATIVE]
        neg.append(n if rate >= 1 else n[rng.random(len(n)) < rate])
    return np.concatenate(pos), np.concatenate(neg), total_neg


def roc_curve(positives: np.ndarray, negatives: np.ndarray) -> Tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(thresholds, FAR, TAR) at every distinct distance, accepting distance < threshold; FAR ascending."""
    pos, neg = np.sort(np.asarray(positives, np.float64)), np.sort(np.asarray(negatives, np.float64))
    if not len(pos) or not len(neg):
        raise ValueError(f"roc_curve: need positive and negative pairs, got {len(pos)} and {len(neg)}")
    thresholds = np.unique(np.concatenate([pos, neg, [np.inf]]))
    far = np.searchsorted(neg, thresholds, "left") / len(neg)
    tar = np.searchsorted(pos, thresholds, "left") / len(pos)
    return thresholds, far, tar


def threshold_at_far(negatives: np.ndarray, far: float) -> float:
    """The largest threshold whose FAR (distance < threshold) is at most `far`."""
    if not 0 < far <= 1:
        raise ValueError(f"FAR must be in (0, 1], got {far}")
    neg = np.sort(np.asarray(negatives, np.float64))
    k = int(math.floor(far * len(neg) + 1e-9))  # negatives allowed below the threshold
    return float("inf") if k >= len(neg) else float(neg[k])


@dataclass
class VerificationReport:
    num_positive: int
    num_negative: int
    num_negative_total: int  # before sampling
    metric: str
    tar_at_far: Dict[str, Dict[str, float]]  # "1e-03" -> {"tar", "threshold", "far" (achieved), "resolved"}
    chosen_far: float
    threshold: float  # distance < threshold -> same person, at `chosen_far`
    roc: Dict[str, List[float]] = field(default_factory=dict)  # a few hundred (far, tar, threshold) points
    rule: str = "same person if distance < threshold"

    def to_json(self) -> Dict:
        data = asdict(self)
        data["threshold"] = _finite(self.threshold)
        for entry in data["tar_at_far"].values():
            entry["threshold"] = _finite(entry["threshold"])
        return data

    def save_json(self, path: Union[str, Path]) -> Path:
        path = Path(path)
        with atomic_write(path) as handle:
            handle.write(json.dumps(self.to_json(), indent=2))
        return path

    def table(self) -> str:
        lines = [f"verification ({self.num_positive} same-id / {self.num_negative} different-id pairs, "
                 f"{self.metric}; {self.rule})", f"{'FAR':>8}  {'TAR':>7}  threshold"]
        for key, entry in self.tar_at_far.items():
            note = "" if entry["resolved"] else "  (too few negatives to resolve this FAR)"
            lines.append(f"{key:>8}  {entry['tar']:7.4f}  {entry['threshold']:.6g}{note}")
        lines.append(f"threshold for FAR {self.chosen_far:g}: {self.threshold:.6g}")
        return "\n".join(lines)


def _finite(value: float) -> Optional[float]:
    return None if not math.isfinite(value) else float(value)


def verification_report(positives: np.ndarray, negatives: np.ndarray, fars: Sequence[float] = DEFAULT_FARS,
                        chosen_far: float = 1e-3, metric: str = DISTANCE_NAMES["euclidean"],
                        num_negative_total: Optional[int] = None, roc_points: int = 200) -> VerificationReport:
    """TAR at each FAR, the threshold for `chosen_far` and a log-spaced sample of the ROC."""
    pos, neg = np.asarray(positives, np.float64), np.asarray(negatives, np.float64)
    thresholds, far_curve, tar_curve = roc_curve(pos, neg)
    pos_sorted = np.sort(pos)
    table = {}
    for f in fars:
        t = threshold_at_far(neg, f)
        table[f"{f:.0e}"] = {"tar": float(np.searchsorted(pos_sorted, t, "left") / len(pos)), "threshold": t,
                             "far": float((neg < t).mean()), "resolved": bool(f * len(neg) >= 1)}
    grid = np.unique(np.concatenate([np.geomspace(max(1.0 / len(neg), 1e-6), 1.0, roc_points), far_curve[-1:]]))
    picks = np.clip(np.searchsorted(far_curve, grid, "right") - 1, 0, len(far_curve) - 1)
    roc = {"far": far_curve[picks].tolist(), "tar": tar_curve[picks].tolist(),
           "threshold": [_finite(v) for v in thresholds[picks]]}
    return VerificationReport(num_positive=len(pos), num_negative=len(neg),
                              num_negative_total=int(num_negative_total if num_negative_total is not None
                                                     else len(neg)),
                              metric=metric, tar_at_far=table, chosen_far=float(chosen_far),
                              threshold=threshold_at_far(neg, chosen_far), roc=roc)


def load_threshold(path: Union[str, Path]) -> Tuple[float, str]:
    """(threshold, metric) from a verification.json written by `tools/test.py --verification`."""
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
        value, metric = data["threshold"], data["metric"]
    except (OSError, ValueError) as exc:
        raise ValueError(f"threshold file {path}: not a readable verification JSON ({exc})") from None
    except (KeyError, TypeError) as exc:
        raise ValueError(f"threshold file {path}: missing key {exc} (expected the verification.json of "
                         "tools/test.py --verification)") from None
    if value is None:
        raise ValueError(f"threshold file {path}: 'threshold' is null (the chosen FAR accepts every pair)")
    return float(value), str(metric)
