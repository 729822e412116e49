"""What the demo knows of each gallery image's relation to a query: the person and camera ids of Market-1501 style
file names, and from them the evaluation protocol's role of every item (`reid.evaluation.verification`), so a
demo rank list marks items as the evaluation counts them. The query itself, or a byte copy of it, is always left
out of its ranking: without ids in the names it would otherwise come first at distance 0."""
from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import List, Optional, Sequence, Tuple

import numpy as np

from .output import copies_of

NAME_PATTERN = re.compile(r"^(-1|\d{4})_c(\d+)")  # Market-1501 style names carry person and camera ids
UNKNOWN_ID = -3  # an unparsable gallery name: neither junk (-1) nor anyone's id
UNKNOWN_ROLE = -1  # a gallery item whose relation to the query is unknown (no ids in the names)


def parse_ids(path: str) -> Optional[Tuple[int, int]]:
    """(person id, camera id) of a Market-1501 style file name, None for any other name."""
    match = NAME_PATTERN.match(Path(path).name)
    return (int(match.group(1)), int(match.group(2))) if match else None


@dataclass
class QueryRoles:
    roles: List[Optional[np.ndarray]]  # per query, every gallery item's role (None: unknown, no ids in the name)
    all_known: bool  # every gallery name carries ids: only then is a top-k accuracy meaningful
    copies: List[List[int]]  # per query, the gallery items that are the query file or a byte copy of it
    ignored: int  # the most items any one query's ranking leaves out (the search fetches this many more)


def _protocol_roles(queries: Sequence[str], gallery_paths: Sequence[str]) -> Tuple[List[Optional[np.ndarray]], bool]:
    """Per query, the protocol role of every gallery item (None when the query's name carries no ids); and whether
    every gallery name carries ids."""
    from ..evaluation.verification import gallery_roles, query_positions

    parsed = [parse_ids(p) for p in gallery_paths]
    g_pids = np.array([p[0] if p else UNKNOWN_ID for p in parsed])
    g_cams = np.array([p[1] if p else UNKNOWN_ID for p in parsed])
    qig = query_positions([str(Path(q).resolve()) for q in queries], gallery_paths)
    out: List[Optional[np.ndarray]] = []
    for qi, q in enumerate(queries):
        ids = parse_ids(q)
        if ids is None:
            out.append(None)
            continue
        out.append(gallery_roles(np.array([ids[0]]), g_pids, np.array([ids[1]]), g_cams, qig[qi:qi + 1])[0])
    return out, all(p is not None for p in parsed)


def query_roles(queries: Sequence[str], gallery_paths: Sequence[str], gallery_sizes: Sequence[int]) -> QueryRoles:
    """The roles of every gallery item for every query, with the query itself and its copies marked SELF."""
    from ..evaluation.verification import SAME_CAMERA, SELF

    roles, all_known = _protocol_roles(queries, gallery_paths)
    copies = [copies_of(q, gallery_paths, gallery_sizes) for q in queries]
    for qi, found in enumerate(copies):
        if found and roles[qi] is None:
            roles[qi] = np.full(len(gallery_paths), UNKNOWN_ROLE, dtype=np.int8)
        if found:
            roles[qi][found] = SELF
    ignored = max((int((r >= SAME_CAMERA).sum()) for r in roles if r is not None), default=0)  # left out
    return QueryRoles(roles, all_known, copies, ignored)
