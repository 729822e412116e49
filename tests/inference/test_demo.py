"""tools/demo.py: gallery-folder search end to end, the feature cache, and its bad-input cases."""
from __future__ import annotations

import json
import os
import shutil
import time
import warnings
from pathlib import Path

import cv2
import numpy as np
import pytest

from reid.cli import demo_main
from reid.demo import run_demo


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
    assert "<img class='ranklist'" not in html and f"href='{pngs[0].name}'" in html  # linked, not shown twice
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


# --- the page (issue 20 item 6), the protocol's roles (item 8), odd names (issue 16 item 12) -------------------

def _page_rows(html_text: str):
    """(href, label, distance text, id/camera, protocol text) of every table row on the page."""
    import re

    return re.findall(r"<tr><td>\d+</td><td><a href='([^']*)'>([^<]*)</a></td><td class='num'>([^<]*)</td>"
                      r"<td>([^<]*)</td><td[^>]*>([^<]*)</td>", html_text)


def test_page_marks_items_as_the_protocol_does(tiny_checkpoint, gallery, tmp_path):
    import html as html_lib
    from urllib.parse import unquote

    query = _query(gallery)  # also in the gallery: it must show as the query itself, ignored
    q_pid, q_cam = query.name.split("_")[0], query.name.split("_")[1][1]
    n = len(list(gallery.rglob("*.jpg")))
    out = tmp_path / "out"
    code = demo_main(["--checkpoint", str(tiny_checkpoint), "--gallery", str(gallery), "--query", str(query),
                      "--topk", str(n), "--out", str(out), "--device", "cpu", "--no-progress"])
    assert code == 0
    page = (out / "index.html").read_text()
    rows = _page_rows(page)
    assert len(rows) == n
    seen = set()
    for href, label, distance, idcam, protocol in rows:
        name = Path(html_lib.unescape(label)).name
        pid, cam = name.split("_")[0], name.split("_")[1][1]
        if Path(name) == Path(query.name):
            expected = "the query itself (ignored)"
        elif pid == "-1":
            expected = "junk (ignored)"
        elif pid == q_pid and cam == q_cam:
            expected = "same id, same camera (ignored)"
        elif pid == q_pid:
            expected = "true match"  # same-camera matches are no longer green, junk no longer red
        else:
            expected = "different id"
        assert html_lib.unescape(protocol) == expected, name
        seen.add(expected)
        assert len(distance.split(".")[1]) >= 4  # enough precision
        assert (out / unquote(html_lib.unescape(href))).resolve() == (gallery / html_lib.unescape(label)).resolve()
    assert {"true match", "different id", "junk (ignored)", "the query itself (ignored)"} <= seen
    assert "squared Euclidean distance" in page  # the metric is named
    for key in ("model", "gallery", "search", "accuracy"):
        assert f"<tr><td>{key}</td>" in page
    # accuracy counts as the protocol does: ignored items skipped, the first valid item decides rank-1
    first_valid = next(html_lib.unescape(p) for *_, p in rows if "ignored" not in p)
    assert f"rank-1 {int(first_valid == 'true match')}/1, top-{n} 1/1" in page
    # distinct distances never print alike
    shown = [float(d) for _, _, d, _, _ in rows]
    texts = [d for _, _, d, _, _ in rows]
    assert len(set(texts)) == len(set(shown))


def test_long_name_with_hash_and_percent_is_shown_in_full_and_linked(tiny_checkpoint, gallery, tmp_path):
    from urllib.parse import unquote
    import html as html_lib
    import re

    src = _query(gallery)
    name = src.name[:10] + "#50%_" + "x" * 231 + ".jpg"  # 250 characters
    assert len(name) == 250
    qdir = tmp_path / "queries"
    qdir.mkdir()
    query = qdir / name
    shutil.copy2(src, query)
    out = tmp_path / "out"
    code = demo_main(["--checkpoint", str(tiny_checkpoint), "--gallery", str(gallery), "--query", str(query),
                      "--topk", "3", "--out", str(out), "--device", "cpu", "--no-progress"])
    assert code == 0
    page = (out / "index.html").read_text()
    assert html_lib.escape(name) in page  # the full name, not 12 characters of it
    png = next(out.glob("ranklist_*.png"))
    assert len(png.name) < 100 and "#" not in png.name and "%" not in png.name
    links = re.findall(r"href='([^']*)'", page)
    query_links = [h for h in links if "x" * 50 in h]
    assert query_links and all("%23" in h and "%25" in h and "#" not in h for h in query_links)
    for h in set(links):
        assert (out / unquote(html_lib.unescape(h))).resolve().is_file(), h


def test_threshold_marks_same_person_and_must_match_the_metric(tiny_checkpoint, gallery, tmp_path, capsys):
    query = _query(gallery)
    out = tmp_path / "out"
    base = ["--checkpoint", str(tiny_checkpoint), "--gallery", str(gallery), "--query", str(query), "--topk", "4",
            "--device", "cpu", "--no-progress"]
    assert demo_main(base + ["--out", str(out), "--threshold", "1e-6"]) == 0
    page = (out / "index.html").read_text()
    assert "same person</td>" in page  # the query itself, at distance 0 < 1e-6
    assert page.count("same person</td>") == 1
    verification = tmp_path / "verification.json"
    verification.write_text(json.dumps({"threshold": 0.5, "metric": "squared euclidean"}))
    assert demo_main(base + ["--out", str(out), "--threshold", str(verification), "--rerank"]) == 2
    err = capsys.readouterr().err
    assert "squared euclidean" in err and "--rerank" in err
    assert demo_main(base + ["--out", str(out), "--threshold", str(tmp_path / "none.json")]) == 2
    assert "none.json" in capsys.readouterr().err


@pytest.mark.parametrize("value", ["nan", "-0.5", "inf"])
def test_threshold_that_is_not_a_finite_distance_is_refused(value, tiny_checkpoint, gallery, tmp_path, capsys):
    """Issue 28.20: NaN marked nothing, inf everything, a negative value nothing, all with exit 0."""
    out = tmp_path / "out"
    args = ["--checkpoint", str(tiny_checkpoint), "--gallery", str(gallery), "--query", str(_query(gallery)),
            "--device", "cpu", "--no-progress", "--out", str(out), "--threshold", value]
    assert demo_main(args) == 2
    assert f"--threshold {value}: expected a finite distance >= 0" in capsys.readouterr().err
    assert not (out / "index.html").exists()


# --- the cache (issue 20 item 7) ----------------------------------------------------------------------------

def test_cache_is_appended_not_rewritten(tiny_checkpoint, gallery, tmp_path, tiny_market, capsys):
    query = _query(gallery)
    out = tmp_path / "out"
    n = len(list(gallery.rglob("*.jpg")))
    run_demo(str(tiny_checkpoint), str(gallery), [str(query)], str(out), device="cpu", progress=False)
    feats, manifest = out / "gallery_cache.f32", out / "gallery_cache.jsonl"
    before, inode, lines = feats.read_bytes(), feats.stat().st_ino, manifest.read_text().splitlines()
    assert len(lines) == n + 1 and len(before) % n == 0
    extra = sorted((Path(tiny_market) / "bounding_box_test").glob("*.jpg"))[-3:]
    for path in extra:
        shutil.copy2(path, gallery / f"new_{path.name}")
    capsys.readouterr()
    run_demo(str(tiny_checkpoint), str(gallery), [str(query)], str(out), device="cpu", progress=False)
    assert f"(3 extracted, {n} from cache)" in capsys.readouterr().out
    after = feats.read_bytes()
    assert feats.stat().st_ino == inode  # same file, appended in place
    assert after[:len(before)] == before and len(after) == len(before) // n * (n + 3)
    assert manifest.read_text().splitlines()[:n + 1] == lines


def test_interrupted_append_keeps_complete_rows(tiny_checkpoint, gallery, tmp_path, capsys):
    query = _query(gallery)
    out = tmp_path / "out"
    n = len(list(gallery.rglob("*.jpg")))
    run_demo(str(tiny_checkpoint), str(gallery), [str(query)], str(out), device="cpu", progress=False)
    with open(out / "gallery_cache.f32", "ab") as handle:  # a torn chunk: half a row, no manifest line
        handle.write(b"\0" * 10)
    with open(out / "gallery_cache.jsonl", "ab") as handle:
        handle.write(b'["/torn/line", 1')
    capsys.readouterr()
    results = run_demo(str(tiny_checkpoint), str(gallery), [str(query)], str(out), device="cpu", progress=False)
    assert f"(0 extracted, {n} from cache)" in capsys.readouterr().out
    assert Path(results[str(query)][0][0]) == query.resolve()


# --- the output folder (issue 16 items 3 and 12) ----------------------------------------------------------------

def _checksums(folder: Path):
    import hashlib

    return {p.relative_to(folder): hashlib.sha256(p.read_bytes()).hexdigest() for p in folder.rglob("*")
            if p.is_file()}


def test_foreign_output_folder_is_refused_untouched(tiny_checkpoint, gallery, tmp_path, capsys):
    out = tmp_path / "mine"
    out.mkdir()
    (out / "index.html").write_text("my own page")
    (out / "ranklist_000_query.png").write_bytes(b"my picture")
    (out / "gallery_cache.npz").write_bytes(b"my data")
    before = _checksums(out)
    args = ["--checkpoint", str(tiny_checkpoint), "--gallery", str(gallery), "--query", str(_query(gallery)),
            "--out", str(out), "--device", "cpu", "--no-progress"]
    assert demo_main(args) == 2
    err = capsys.readouterr().err
    assert str(out) in err and "--force" in err and "index.html" in err and "Traceback" not in err
    assert _checksums(out) == before
    assert demo_main(args + ["--force"]) == 0  # an explicit permission
    assert (out / "index.html").read_text() != "my own page"


def test_demo_folder_is_reused_but_not_with_a_stranger_inside(tiny_checkpoint, gallery, tmp_path, capsys):
    out = tmp_path / "out"
    args = ["--checkpoint", str(tiny_checkpoint), "--gallery", str(gallery), "--device", "cpu", "--no-progress",
            "--out", str(out), "--query"]
    queries = sorted(p for p in gallery.rglob("*.jpg") if not p.name.startswith(("0000", "-1")))
    assert demo_main(args + [str(queries[0]), str(queries[1])]) == 0
    assert len(list(out.glob("ranklist_*.png"))) == 2
    assert demo_main(args + [str(queries[2])]) == 0  # its own folder: fine, earlier rank lists are dropped
    assert [p.name.startswith("ranklist_000_") for p in out.glob("ranklist_*.png")] == [True]
    (out / "notes.txt").write_text("mine")
    before = _checksums(out)
    assert demo_main(args + [str(queries[2])]) == 2
    assert "notes.txt" in capsys.readouterr().err and _checksums(out) == before


def test_output_inside_gallery_is_refused(tiny_checkpoint, gallery, tmp_path, capsys):
    out = gallery / "part0" / "results"
    code = demo_main(["--checkpoint", str(tiny_checkpoint), "--gallery", str(gallery), "--query",
                      str(_query(gallery)), "--out", str(out), "--device", "cpu"])
    assert code == 2
    assert "inside the gallery folder" in capsys.readouterr().err
    assert not out.exists()


@pytest.mark.parametrize("case", ["bad_checkpoint", "unreadable_gallery", "bad_topk"])
def test_failed_start_leaves_no_output_folder(case, tiny_checkpoint, gallery, tmp_path, capsys):
    ckpt, gal, topk = tiny_checkpoint, gallery, "5"
    if case == "bad_checkpoint":
        ckpt = tmp_path / "bad.pth"
        ckpt.write_bytes(b"not a checkpoint")
    elif case == "unreadable_gallery":
        gal = tmp_path / "broken"
        gal.mkdir()
        (gal / "a.jpg").write_bytes(b"junk")
    else:
        topk = "0"
    out = tmp_path / "new" / "deeper"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        code = demo_main(["--checkpoint", str(ckpt), "--gallery", str(gal), "--query", str(_query(gallery)),
                          "--out", str(out), "--device", "cpu", "--topk", topk, "--no-progress"])
    assert code == 2
    assert "Traceback" not in capsys.readouterr().err
    assert not (tmp_path / "new").exists()


def test_demo_with_faiss_backend_matches_exact(tiny_checkpoint, gallery, tmp_path):
    pytest.importorskip("faiss")
    query = _query(gallery)
    exact = run_demo(str(tiny_checkpoint), str(gallery), [str(query)], str(tmp_path / "a"), topk=8, device="cpu")
    flat = run_demo(str(tiny_checkpoint), str(gallery), [str(query)], str(tmp_path / "b"), topk=8, device="cpu",
                    backend="faiss")
    assert [p for p, _ in exact[str(query)]] == [p for p, _ in flat[str(query)]]


def test_progress_never_floods_redirected_output(tiny_checkpoint, gallery, tmp_path, capfd):
    """Progress enabled, stderr not a terminal: no bar refreshes (carriage returns) land in the log."""
    run_demo(str(tiny_checkpoint), str(gallery), [str(_query(gallery))], str(tmp_path / "out"), device="cpu",
             progress=True)
    captured = capfd.readouterr()
    assert "\r" not in captured.err and "\r" not in captured.out


@pytest.mark.parametrize("case", ["faiss_missing", "rerank_with_faiss"])
def test_backend_problems_are_refused_before_anything_is_written(case, tiny_checkpoint, gallery, tmp_path,
                                                                  monkeypatch, capsys):
    import sys

    args = ["--checkpoint", str(tiny_checkpoint), "--gallery", str(gallery), "--query", str(_query(gallery)),
            "--out", str(tmp_path / "out"), "--device", "cpu", "--backend", "faiss"]
    if case == "faiss_missing":
        monkeypatch.setitem(sys.modules, "faiss", None)
        expected = "reid-toolkit[faiss]"
    else:
        args.append("--rerank")
        expected = "--backend exact"
    assert demo_main(args) == 2
    assert expected in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


def test_feature_cache_compacts_once_dead_rows_outnumber_live_ones(tmp_path, capsys):
    from reid.demo.cache import FeatureCache

    cache = FeatureCache(tmp_path, key="k1")
    assert cache.load() == {}
    feats = np.arange(3000 * 4, dtype=np.float32).reshape(3000, 4)
    for s in range(0, 3000, 500):  # six appends
        cache.append([(f"/g/{i}.jpg", i, i) for i in range(s, s + 500)], feats[s:s + 500])
    assert not cache.compact({p: e for p, e in cache.entries.items() if int(p[3:-4]) < 1500})  # 1500 dead: kept
    reopened = FeatureCache(tmp_path, key="k1")
    entries = reopened.load()
    live = {p: e for p, e in entries.items() if int(p[3:-4]) % 10 == 0}
    assert reopened.compact(live)  # 2700 dead > max(300, 1024): one rewrite
    again = FeatureCache(tmp_path, key="k1")
    kept = again.load()
    assert sorted(kept) == sorted(live) and again.rows == 300
    for path, (_, _, row) in kept.items():
        assert np.array_equal(again.read([row])[0], feats[int(path[3:-4])])
    other = FeatureCache(tmp_path, key="k2")  # another checkpoint: the cache is reset, not mixed
    assert other.load() == {} and "another checkpoint" in capsys.readouterr().out
