"""tools/demo.py: gallery-folder search end to end, the feature cache, and its bad-input cases."""
from __future__ import annotations

import os
import shutil
import time
from pathlib import Path

import cv2
import numpy as np
import pytest

from reid.cli import demo_main
from reid.demo import DemoError, run_demo


@pytest.fixture()
def gallery(tiny_market, tmp_path):
    """A folder tree of crops (nested, as a user's folder would be) copied from the tiny dataset's test split."""
    files = sorted((Path(tiny_market) / "bounding_box_test").glob("*.jpg"))
    people = [f for f in files if not f.name.startswith(("0000", "-1"))]
    others = [f for f in files if f.name.startswith(("0000", "-1"))]
    src = people[:26] + others[:2] + others[-2:]  # people plus background and junk crops
    root = tmp_path / "gallery"
    for i, path in enumerate(src):
        target = root / f"part{i % 2}" / path.name
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(path, target)
    return root


def _query(gallery_dir: Path) -> Path:
    return sorted(p for p in gallery_dir.rglob("*.jpg") if not p.name.startswith(("0000", "-1")))[3]


def test_demo_end_to_end(tiny_checkpoint, gallery, tmp_path, capsys):
    query = _query(gallery)
    out = tmp_path / "out"
    code = demo_main(["--checkpoint", str(tiny_checkpoint), "--gallery", str(gallery), "--query", str(query),
                      "--topk", "5", "--out", str(out), "--device", "cpu"])
    assert code == 0
    printed = capsys.readouterr().out
    assert "rank" in printed and "distance" in printed and query.name in printed
    pngs = list(out.glob("ranklist_*.png"))
    assert len(pngs) == 1
    html = (out / "index.html").read_text()
    assert pngs[0].name in html and query.name.split(".")[0] in html
    # Legible: a wide strip of query + 5 thumbnails, not blank.
    image = cv2.imread(str(pngs[0]))
    assert image.shape[1] > image.shape[0] * 2 and image.std() > 10


def test_query_in_gallery_ranks_itself_first(tiny_checkpoint, gallery, tmp_path):
    query = _query(gallery)
    results = run_demo(str(tiny_checkpoint), str(gallery), [str(query)], str(tmp_path / "out"), topk=3,
                       device="cpu")
    first_path, first_dist = results[str(query)][0]
    assert Path(first_path) == query.resolve()
    assert first_dist == pytest.approx(0.0, abs=1e-5)


def test_cache_reuse_and_invalidation(tiny_checkpoint, gallery, tmp_path, capsys):
    query = _query(gallery)
    out = tmp_path / "out"
    n = len(list(gallery.rglob("*.jpg")))
    run_demo(str(tiny_checkpoint), str(gallery), [str(query)], str(out), device="cpu")
    assert f"({n} extracted, 0 from cache)" in capsys.readouterr().out
    run_demo(str(tiny_checkpoint), str(gallery), [str(query)], str(out), device="cpu")
    assert f"(0 extracted, {n} from cache)" in capsys.readouterr().out
    touched = sorted(gallery.rglob("*.jpg"))[5]
    later = time.time() + 5
    os.utime(touched, (later, later))
    run_demo(str(tiny_checkpoint), str(gallery), [str(query)], str(out), device="cpu")
    assert f"(1 extracted, {n - 1} from cache)" in capsys.readouterr().out


def test_stale_cache_of_another_checkpoint_is_not_reused(tiny_checkpoint, gallery, tmp_path, capsys):
    query = _query(gallery)
    out = tmp_path / "out"
    run_demo(str(tiny_checkpoint), str(gallery), [str(query)], str(out), device="cpu")
    other = tmp_path / "other.pth"
    shutil.copy2(tiny_checkpoint, other)
    with open(other, "ab") as handle:  # a different file: another checkpoint as far as the cache knows
        handle.write(b"\0")
    capsys.readouterr()
    run_demo(str(other), str(gallery), [str(query)], str(out), device="cpu")
    printed = capsys.readouterr().out
    assert "another checkpoint" in printed
    n = len(list(gallery.rglob("*.jpg")))
    assert f"({n} extracted, 0 from cache)" in printed


def test_unreadable_gallery_images_are_skipped_and_counted(tiny_checkpoint, gallery, tmp_path, capsys):
    (gallery / "broken.jpg").write_bytes(b"not a jpeg")
    (gallery / "part0" / "empty.png").write_bytes(b"")
    with pytest.warns(UserWarning, match="unreadable"):
        results = run_demo(str(tiny_checkpoint), str(gallery), [str(_query(gallery))], str(tmp_path / "o"),
                           device="cpu")
    assert "skipped 2 unreadable gallery image(s)" in capsys.readouterr().out
    assert all("broken" not in p for p, _ in next(iter(results.values())))


@pytest.mark.parametrize("case", ["missing_gallery", "empty_gallery", "query_not_image", "missing_checkpoint",
                                  "output_not_writable"])
def test_demo_bad_input(case, tiny_checkpoint, gallery, tmp_path, capsys):
    args = {"checkpoint": str(tiny_checkpoint), "gallery": str(gallery), "query": str(_query(gallery)),
            "out": str(tmp_path / "out")}
    expected = {}
    if case == "missing_gallery":
        args["gallery"] = expected["text"] = str(tmp_path / "nope")
    elif case == "empty_gallery":
        (tmp_path / "empty").mkdir()
        args["gallery"] = expected["text"] = str(tmp_path / "empty")
    elif case == "query_not_image":
        text = tmp_path / "notes.txt"
        text.write_text("hello")
        args["query"] = expected["text"] = str(text)
    elif case == "missing_checkpoint":
        args["checkpoint"] = expected["text"] = str(tmp_path / "none.pth")
    else:
        blocker = tmp_path / "a_file"  # a folder cannot be made below a file, not even by root
        blocker.write_text("x")
        args["out"] = str(blocker / "out")
        expected["text"] = "not writable"
    code = demo_main(["--checkpoint", args["checkpoint"], "--gallery", args["gallery"], "--query", args["query"],
                      "--out", args["out"], "--device", "cpu"])
    assert code == 2
    err = capsys.readouterr().err
    assert expected["text"] in err and "Traceback" not in err
