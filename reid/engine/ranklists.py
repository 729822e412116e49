"""Rank-list drawings of evaluated feature sets: the training run's TensorBoard image and reid-test's PNGs.

Apart from the test runner (`tester.py`) so that the training hooks draw rank lists without importing it.
"""
from __future__ import annotations

from pathlib import Path
from typing import List, Tuple

import numpy as np

from ..evaluation.distance import rank_gallery
from .evaluator import FeatureSet


def draw_ranklists(query: FeatureSet, gallery: FeatureSet, count: int, seed: int = 0, topk: int = 10,
                   has_cameras: bool = True, camera_base: int = 1) -> List[Tuple[int, np.ndarray]]:
    """(query index, rank-list image) for `count` seeded queries, ranked as the evaluation ranks them: the
    protocol's own roles (`gallery_roles`) remove junk and same-camera matches, or only the query itself when
    there are no camera ids. Cameras are labelled c<camid + camera_base> (`ReIDDataset.camera_base`: the file
    names' numbering, c1-c6 for Market-1501)."""
    from ..evaluation.verification import MATCH, gallery_roles, in_ranking, query_positions
    from ..visualize import distance_decimals, draw_ranklist

    rng = np.random.default_rng(seed)
    picks = rng.choice(len(query.paths), size=min(count, len(query.paths)), replace=False)
    # without camera ids the protocol leaves out only the query itself (as evaluate_features does)
    qig = None if has_cameras else query_positions(query.paths, gallery.paths)
    drawn = []
    for q in sorted(picks.tolist()):
        role = gallery_roles(query.pids[q:q + 1], gallery.pids, query.camids[q:q + 1] if has_cameras else None,
                             gallery.camids if has_cameras else None, None if qig is None else qig[q:q + 1])[0]
        idx = np.flatnonzero(in_ranking(role))
        order, dist = rank_gallery(query.features[q], gallery.features[idx], topk)
        chosen = idx[order]
        drawn.append((q, draw_ranklist(query.paths[q], [gallery.paths[i] for i in chosen], dist,
                                       roles=["match" if role[i] == MATCH else "negative" for i in chosen],
                                       labels=[f"id {gallery.pids[i]} c{gallery.camids[i] + camera_base}"
                                               if has_cameras else f"id {gallery.pids[i]}" for i in chosen],
                                       query_label=f"id {query.pids[q]} c{query.camids[q] + camera_base}"
                                       if has_cameras
                                       else f"id {query.pids[q]}", decimals=distance_decimals(dist))))
    return drawn


def write_ranklists(query: FeatureSet, gallery: FeatureSet, folder: Path, count: int, seed: int = 0,
                    topk: int = 10, has_cameras: bool = True, camera_base: int = 1) -> List[Path]:
    """Rank-list PNGs (`draw_ranklists`) written to `folder/query_<index>.png`."""
    from ..visualize import save_image

    return [save_image(image, folder / f"query_{q:05d}.png")
            for q, image in draw_ranklists(query, gallery, count, seed, topk, has_cameras, camera_base)]
