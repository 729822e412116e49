"""tools/test.py reads query and gallery (and the multi-query images) from the decoded-image cache on the tensor
pipeline, as the trainer's evaluations do: decoded once, reused, the same results as the per-file albumentations
pipeline, nothing written with cache_dir=off, and no albumentations / numba needed."""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from reid.cli import load_test_config
from reid.data.cache import cache_key
from reid.data.image_io import ImageReadError
from reid.engine import tester
from reid.engine.tester import EvalImages, run_test

from engine_helpers import BLOCK_OPTIONAL_DEPS

Options = tester.TestOptions  # not imported under its own name: pytest would try to collect a Test* class

SIZE = (64, 32)  # the tiny configs' transforms.height / width
REPO = next(p for p in Path(__file__).resolve().parents if (p / "tools" / "test.py").is_file())


def _cfg(checkpoint: Path, *overrides: str):
    return load_test_config(None, str(checkpoint), list(overrides))


def _stamps(folder: Path):
    """Each entry's inode and size: a rewrite (temporary file + rename) gives a new inode. The modification time
    is no witness any more: a reused entry's is set to now, the cache's least-recently-used clock."""
    return {p.name: (p.stat().st_ino, p.stat().st_size) for p in folder.glob("*.npy")}


def _same_result(a, b):
    assert a.num_queries == b.num_queries and a.num_skipped == b.num_skipped
    assert a.cmc.tolist() == pytest.approx(b.cmc.tolist(), abs=1e-9)
    assert a.mAP == pytest.approx(b.mAP, abs=1e-6) and a.mINP == pytest.approx(b.mINP, abs=1e-6)


def test_cache_built_once_reused_and_same_results_as_albumentations(tiny_checkpoint, tmp_path, monkeypatch):
    cache = tmp_path / "cache"
    cfg = _cfg(tiny_checkpoint, f"data.cache_dir={cache}")
    assert cfg["data"]["pipeline"] == "tensor"
    first, _ = run_test(cfg, str(tiny_checkpoint), Options(output_dir=str(tmp_path / "t1")), progress=False)
    stamps = _stamps(cache)
    assert len(stamps) == 2  # query, gallery
    # the second evaluation maps the files: nothing decoded, nothing rewritten
    import reid.data.cache as cache_module

    def no_decoding(*args, **kwargs):
        raise AssertionError("decoded again instead of reusing the cache")

    with monkeypatch.context() as patch:
        patch.setattr(cache_module, "_decode_into", no_decoding)
        again, _ = run_test(cfg, str(tiny_checkpoint), Options(output_dir=str(tmp_path / "t2")), progress=False)
    assert _stamps(cache) == stamps
    _same_result(first, again)
    per_file, _ = run_test(_cfg(tiny_checkpoint, "data.pipeline=albumentations", f"data.cache_dir={cache}"),
                           str(tiny_checkpoint), Options(output_dir=str(tmp_path / "t3")), progress=False)
    assert _stamps(cache) == stamps
    _same_result(first, per_file)
    assert first.mAP > 0 and first.num_queries > 0

    # multi-query: the gt_bbox images get their own cache entry, and the same results per file
    multi, _ = run_test(cfg, str(tiny_checkpoint), Options(output_dir=str(tmp_path / "m1"), multi_query="mean"),
                        progress=False)
    assert len(_stamps(cache)) == 3
    multi_per_file, _ = run_test(_cfg(tiny_checkpoint, "data.pipeline=albumentations"), str(tiny_checkpoint),
                                 Options(output_dir=str(tmp_path / "m2"), multi_query="mean"), progress=False)
    _same_result(multi, multi_per_file)


def test_decoded_batches_match_the_per_file_batches(tiny_checkpoint, tmp_path):
    """Same decoding (OpenCV, bilinear resize) both ways: uint8 pixels equal; the normalisation divides by
    std * 255 where albumentations multiplies by its reciprocal, so the float inputs differ by rounding only."""
    from reid.builders import build_dataset_from_config

    cfg = _cfg(tiny_checkpoint, "data.cache_dir=off")
    query = build_dataset_from_config(cfg).query
    fast = EvalImages(cfg, tmp_path / "out", progress=False).loader(query, "query")
    slow = EvalImages(_cfg(tiny_checkpoint, "data.pipeline=albumentations"), tmp_path / "out",
                      progress=False).loader(query, "query")
    n = 0
    for a, b in zip(fast, slow):
        torch.testing.assert_close(a["img"], b["img"], atol=1e-5, rtol=0)
        assert torch.equal(a["pid"], b["pid"]) and torch.equal(a["camid"], b["camid"])
        n += len(a["img"])
    assert n == len(query)


def test_cache_off_writes_no_file(tiny_checkpoint, tmp_path):
    root = Path(_cfg(tiny_checkpoint)["data"]["root"])
    before = sorted(root.rglob("*.npy"))
    cfg = _cfg(tiny_checkpoint, "data.cache_dir=off")
    result, out = run_test(cfg, str(tiny_checkpoint), Options(output_dir=str(tmp_path / "out")), progress=False)
    assert result.num_queries > 0
    assert sorted(root.rglob("*.npy")) == before
    assert not list(tmp_path.rglob("*.npy")) and not (out / "cache").exists()


def test_default_cache_next_to_the_data_or_in_the_output_folder(tiny_checkpoint, tmp_path, monkeypatch):
    from reid.builders import build_dataset_from_config

    cfg = _cfg(tiny_checkpoint)
    assert cfg["data"]["cache_dir"] is None
    dataset = build_dataset_from_config(cfg)
    keys = [cache_key([s.path for s in split], *SIZE) for split in (dataset.query, dataset.gallery)]
    run_test(cfg, str(tiny_checkpoint), Options(output_dir=str(tmp_path / "a")), progress=False)
    root = Path(cfg["data"]["root"])
    assert all((root / ".reid_cache" / f"{k}.npy").is_file() for k in keys)  # the trainer's cache, shared

    import reid.data.cache as cache_module

    monkeypatch.setattr(cache_module, "_writable", lambda folder: False)  # a read-only data root
    run_test(cfg, str(tiny_checkpoint), Options(output_dir=str(tmp_path / "b")), progress=False)
    assert sorted(p.name for p in (tmp_path / "b" / "cache").glob("*.npy")) == sorted(f"{k}.npy" for k in keys)


@pytest.mark.parametrize("cache_dir", ["cache", "off"])
def test_a_bad_gallery_image_is_one_error_naming_it(tiny_checkpoint, tmp_path, cache_dir):
    root = Path(_cfg(tiny_checkpoint)["data"]["root"])
    copy = tmp_path / root.name
    shutil.copytree(root, copy, ignore=shutil.ignore_patterns(".reid_cache"))
    bad = sorted((copy / "bounding_box_test").glob("*.jpg"))[3]
    bad.write_bytes(bad.read_bytes()[:200])  # truncated JPEG
    where = str(tmp_path / "cache") if cache_dir == "cache" else "off"
    cfg = _cfg(tiny_checkpoint, f"data.root={copy}", f"data.cache_dir={where}")
    with pytest.raises(ImageReadError, match="truncated JPEG") as caught:
        run_test(cfg, str(tiny_checkpoint), Options(output_dir=str(tmp_path / "out")), progress=False)
    assert str(bad) in str(caught.value) and "1 unreadable gallery image(s)" in str(caught.value)
    assert not (tmp_path / "out" / "results.json").exists()


def test_tools_test_runs_without_albumentations_and_numba(tiny_checkpoint, tmp_path):
    cache = tmp_path / "cache"
    argv = ["--checkpoint", str(tiny_checkpoint), "--output-dir", str(tmp_path / "out"), "--no-progress",
            "--multi-query", "mean", f"data.cache_dir={cache}"]
    script = BLOCK_OPTIONAL_DEPS + (
        "import runpy\n"
        f"sys.argv = ['tools/test.py'] + {argv!r}\n"
        "try:\n"
        "    runpy.run_path('tools/test.py', run_name='__main__')\n"
        "except SystemExit as exc:\n"
        "    assert not exc.code, exc.code\n"
        "assert 'albumentations' not in sys.modules and 'numba' not in sys.modules\n"
        "print('evaluated without albumentations')\n")
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=600,
                          cwd=REPO,
                          env={**os.environ, "NO_ALBUMENTATIONS_UPDATE": "1"})
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "evaluated without albumentations" in proc.stdout and "mAP" in proc.stdout
    assert (tmp_path / "out" / "results.json").is_file() and len(list(cache.glob("*.npy"))) == 3
