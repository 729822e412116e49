"""The test half of a run's data is written once (`reid.engine.data_setup.SplitImages`): the training run's
`TrainingData` and reid-test's `EvalImages` are that class, and differ only where their policies differ (reid-test
resolves data.cache_dir only on the pipeline that decodes into it, and reads per file on albumentations)."""
from __future__ import annotations

import numpy as np
import pytest

from reid.config import ConfigError, load_config
from reid.data.datasets.base import Sample
from reid.data.image_io import ImageReadError
from reid.engine.data_setup import SplitImages, TrainingData
from reid.engine.tester import EvalImages


def _cfg(tmp_path, *overrides):
    return load_config(None, [f"data.root={tmp_path / 'data'}", "transforms.height=16", "transforms.width=8",
                              *overrides])


def _samples(tmp_path, bad: bool = False):
    import cv2

    paths = []
    for i in range(3):
        path = tmp_path / f"{i:04d}_c1s1_000001_00.png"
        cv2.imwrite(str(path), np.full((20, 10, 3), 40 * i, np.uint8))
        paths.append(path)
    if bad:
        paths[1].write_bytes(b"not an image")
    return [Sample(path=str(p), pid=i, camid=0, extras={}) for i, p in enumerate(paths)]


def test_training_and_reid_test_share_one_implementation():
    assert issubclass(TrainingData, SplitImages) and issubclass(EvalImages, SplitImages)
    for name in ("decode", "check_split", "test_loader", "close"):
        assert getattr(TrainingData, name) is getattr(SplitImages, name) is getattr(EvalImages, name)


def test_reid_test_resolves_the_cache_folder_only_where_it_decodes(tmp_path):
    blocker = tmp_path / "a_file"
    blocker.write_text("x")
    cfg = _cfg(tmp_path, "data.pipeline=albumentations", f"data.cache_dir={blocker}")
    assert EvalImages(cfg, tmp_path / "run", progress=False).cache_dir is None
    with pytest.raises(ConfigError, match=r"data.cache_dir=.*is a file"):
        SplitImages(cfg, tmp_path / "run", print)  # as training: refused on either pipeline
    with pytest.raises(ConfigError, match=r"data.cache_dir=.*is a file"):
        EvalImages(_cfg(tmp_path, f"data.cache_dir={blocker}"), tmp_path / "run", progress=False)


def test_a_bad_evaluated_image_is_an_error_on_either_pipeline_when_checked(tmp_path):
    samples = _samples(tmp_path, bad=True)
    tensor = SplitImages(_cfg(tmp_path, "data.cache_dir=off"), tmp_path / "run", lambda m: None, progress=False)
    with pytest.raises(ImageReadError, match="1 unreadable gallery image"):
        tensor.check_split(samples, "gallery", check_files=False)  # decoding finds it whatever check_files says
    per_file = SplitImages(_cfg(tmp_path, "data.pipeline=albumentations"), tmp_path / "run", lambda m: None)
    with pytest.raises(ImageReadError, match="1 unreadable query image"):
        per_file.check_split(samples, "query")
    per_file.check_split(samples, "query", check_files=False)  # reid-test's albumentations path: when reached


def test_the_loader_reads_the_decoded_split_or_the_files_alike(tmp_path):
    samples = _samples(tmp_path)
    images = EvalImages(_cfg(tmp_path, "data.cache_dir=off"), tmp_path / "run", progress=False)
    decoded = next(iter(images.loader(samples, "query")))
    assert set(images.decoded) == {"query"} and len(images.decoded["query"]) == 3
    files = next(iter(images.test_loader(samples, None)))  # no split: read per file
    assert decoded["img"].shape == files["img"].shape == (3, 3, 16, 8)
    assert decoded["pid"].tolist() == files["pid"].tolist() == [0, 1, 2]
    images.close()
    assert images.decoded == {}
