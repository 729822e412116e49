"""The demo's report of one query's search: the printed table, the HTML page's entry (rows and thumbnails) and the
rank-list PNG, with a note on where the first true match is, counted as the evaluation counts ranks (items the
protocol ignores are marked in the strip, not removed, and not counted)."""
from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import List, Optional, Sequence, Tuple

import numpy as np

from .output import OutputFolder, write_thumbnail
from .page import PageEntry, PageRow
from .roles import UNKNOWN_ROLE, parse_ids


@dataclass
class Accuracy:
    """Rank-1 and top-k hits over the queries with a true match in a gallery whose names all carry ids."""

    counted: int = 0
    hits1: int = 0
    hitsk: int = 0


@dataclass
class ReportSetting:
    """What every query's report shares."""

    out_dir: Path
    gallery_root: Path  # the gallery folder, resolved: paths are shown relative to it
    topk: int
    decimals: int  # of every printed distance (`reid.visualize.distance_decimals` of all shown ones)
    limit: Optional[float]  # --threshold: distances below it are marked "same person"


def _safe_name(stem: str, limit: int = 60) -> str:
    # file-system friendly and short: a 250-character query name must not exceed the 255-byte name limit
    return re.sub(r"[^A-Za-z0-9._-]+", "_", stem)[:limit] or "query"


def protocol_note(role: Optional[np.ndarray], order: Sequence[int], topk: int, all_known: bool,
                  accuracy: Accuracy) -> str:
    """Where the query's first true match is, in the strip and by the protocol's rank; counted in `accuracy`."""
    from ..evaluation.verification import MATCH, in_ranking

    if role is None or not all_known or not (role == MATCH).any():
        return ""
    shown = list(order[:topk])
    ranked_here = in_ranking(role)
    valid = [j for j in order if ranked_here[j]][:topk]
    accuracy.counted += 1
    accuracy.hits1 += int(bool(valid) and role[valid[0]] == MATCH)
    accuracy.hitsk += int(any(role[j] == MATCH for j in valid))
    first = next(((r, j) for r, j in enumerate(valid, 1) if role[j] == MATCH), None)
    # the strip numbers every item shown; the protocol's rank skips the ignored ones: say both
    if first is None:
        return f"- first true match: not within the protocol's top {topk}"
    if first[1] in shown:
        return (f"- first true match: #{shown.index(first[1]) + 1} below (protocol rank {first[0]}: the ignored "
                "items before it are not counted)")
    return f"- first true match: protocol rank {first[0]}, after the {topk} items shown (they include ignored ones)"


def _kind(role: Optional[np.ndarray], j: int, ids: Optional[Tuple[int, int]]) -> Tuple[str, str]:
    """(border kind, protocol text) of gallery item `j` in the query's strip and table."""
    from ..evaluation.verification import MATCH, NEGATIVE, ROLE_NAMES, SELF

    if role is not None and role[j] == SELF:
        return "ignored", ROLE_NAMES[SELF]
    if role is None or ids is None or role[j] == UNKNOWN_ROLE:  # a query without ids: its relation is unknown
        return "unknown", "id unknown"
    return {MATCH: "match", NEGATIVE: "negative"}.get(int(role[j]), "ignored"), ROLE_NAMES[int(role[j])]


def report_query(qi: int, query: str, query_array: np.ndarray, ranked: List[Tuple[str, float]],
                 order: Sequence[int], role: Optional[np.ndarray], note: str, setting: ReportSetting,
                 output: OutputFolder) -> PageEntry:
    """Print the query's table, write its rank-list PNG (added to `output`) and return its page entry."""
    from ..visualize import draw_ranklist, save_image

    q_ids, out_dir, decimals = parse_ids(query), setting.out_dir, setting.decimals
    print(f"\nquery {query}" + (f" (id {q_ids[0]}, camera {q_ids[1]})" if q_ids else ""))
    print(f"{'rank':>4}  {'distance':>{decimals + 4}}  {'id':>5}  {'cam':>3}  {'protocol':<14}  path")
    rows, labels, kinds = [], [], []
    for r, ((path, d), j) in enumerate(zip(ranked, order), 1):
        ids = parse_ids(path)
        kind, text = _kind(role, j, ids)
        same = None if setting.limit is None else d < setting.limit
        rel = os.path.relpath(path, setting.gallery_root)
        print(f"{r:>4}  {d:>{decimals + 4}.{decimals}f}  {ids[0] if ids else '-':>5}  "
              f"{ids[1] if ids else '-':>3}  {kind:<14}  {rel}" + ("  same person" if same else ""))
        labels.append(f"id {ids[0]} c{ids[1]}" if ids else Path(path).stem[:14])
        kinds.append(kind)
        rows.append(PageRow(r, rel, os.path.relpath(path, out_dir.resolve()), d,
                            f"{ids[0]} / c{ids[1]}" if ids else "-", kind, text, same,
                            thumb=write_thumbnail(path, out_dir)))
    image = draw_ranklist(query_array, [p for p, _ in ranked], [d for _, d in ranked], roles=kinds,
                          labels=labels, query_label="query", decimals=decimals, title=Path(query).name)
    png = f"ranklist_{qi:03d}_{_safe_name(Path(query).stem)}.png"
    save_image(image, out_dir / png)
    output.add(png)
    return PageEntry(str(query), os.path.relpath(Path(query).resolve(), out_dir.resolve()), png,
                     f"id {q_ids[0]}, camera {q_ids[1]}" if q_ids else "id unknown", rows, note,
                     thumb=write_thumbnail(query, out_dir))
