"""Issue 29 items 7 and 8: rank lists (tools/test.py --visualize, TensorBoard) name cameras as the file names do
(c1-c6 for Market-1501, not the 0-based ids used inside), and reid-test says where its PNGs went."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch



def _sets(tiny_market):
    from reid.data.datasets.market1501 import parse_name
    from reid.engine.evaluator import FeatureSet

    def make(folder, n):
        paths = sorted(str(p) for p in (Path(tiny_market) / folder).glob("0*_c*.jpg")
                       if not p.name.startswith("0000"))[:n]
        pids, cams = zip(*(parse_name(Path(p)) for p in paths))
        return FeatureSet(torch.randn(len(paths), 8), np.array(pids), np.array(cams), paths)

    return make("query", 3), make("bounding_box_test", 20)


@pytest.mark.parametrize("base", [1, 0])
def test_ranklist_labels_use_the_file_names_camera_numbers(tiny_market, monkeypatch, base):
    from reid import visualize
    from reid.engine.ranklists import draw_ranklists

    seen = []

    def capture(query, gallery, distances, roles=None, labels=None, query_label=None, **kwargs):
        seen.append((query, query_label, list(zip(gallery, labels))))
        return np.zeros((4, 4, 3), np.uint8)

    monkeypatch.setattr(visualize, "draw_ranklist", capture)
    query, gallery = _sets(tiny_market)
    draw_ranklists(query, gallery, count=2, topk=5, camera_base=base)
    assert seen
    for query_path, query_label, items in seen:
        for path, label in [(query_path, query_label), *items]:
            camera_in_name = int(Path(path).name.split("_c")[1][0])  # 0009_c3s1_... -> 3
            # Market-1501 stores c3 as camera 2 inside; base 1 shows the file's number again
            assert label.endswith(f" c{camera_in_name - 1 + base}"), (path, label)


def test_own_data_folders_keep_their_camera_numbers():
    from reid.data.datasets.base import ReIDDataset
    from reid.data.datasets.folder import CSVDataset, FolderDataset
    from reid.data.datasets.market1501 import Market1501

    assert Market1501.camera_base == 1 and ReIDDataset.camera_base == 1
    assert FolderDataset.camera_base == 0 and CSVDataset.camera_base == 0


def test_reid_test_says_where_the_rank_lists_went(tiny_checkpoint, tmp_path, capsys):
    from reid import cli

    out = tmp_path / "test"
    assert cli.test_main(["--checkpoint", str(tiny_checkpoint), "--output-dir", str(out), "--visualize", "2",
                          "--no-progress"]) == 0
    printed = capsys.readouterr().out
    assert f"rank lists: 2 PNG(s) in {out / 'ranklists'}" in printed
    assert len(list((out / "ranklists").glob("query_*.png"))) == 2
