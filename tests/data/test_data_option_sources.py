"""The data layer's option lists are the config schema's (one source), with the messages they had when each
module kept its own copy; dataset options are checked by one function for the adapters and the config."""
from __future__ import annotations

import pytest

from reid.config import ConfigError, load_config
from reid.config.schema import CHOICES


def test_data_option_lists_are_the_schema_choices():
    from reid.data import cache, image_io, loader, sampler, train_loader

    assert train_loader.PIPELINES == CHOICES["data.pipeline"] == ("tensor", "albumentations")
    assert sampler.SAMPLERS == CHOICES["data.sampler"] == ("pk", "darkrank")
    assert image_io.ON_ERROR == loader.ON_ERROR == CHOICES["data.on_error"] == ("raise", "skip")
    assert cache.HASHES == CHOICES["data.cache_hash"] == ("stat", "content")


def test_data_messages_are_unchanged(tmp_path):
    from reid.data.image_io import apply_error_policy
    from reid.data.loader import ImageDataset
    from reid.data.sampler import build_batch_sampler
    from reid.data.train_loader import build_train_loader

    cases = [(lambda: ImageDataset([], on_error="bogus"), "on_error: expected 'raise' or 'skip', got 'bogus'"),
             (lambda: apply_error_policy([], [], "bogus"), "data.on_error: expected 'raise' or 'skip', got 'bogus'"),
             (lambda: build_batch_sampler("bogus", [0, 1], [0, 0], 1, 1, 0),
              "unknown batch sampler 'bogus'; known: pk, darkrank"),
             (lambda: build_train_loader([], {}, pipeline="bogus"),
              "data.pipeline: expected one of tensor, albumentations, got 'bogus'")]
    for call, message in cases:
        with pytest.raises(ValueError) as info:
            call()
        assert str(info.value) == message


def test_image_extensions_are_one_list(tmp_path):
    from reid.data.datasets import folder
    from reid.data.image_io import IMAGE_EXTS
    from reid.inference import list_images

    assert folder.IMAGE_EXTS is IMAGE_EXTS and IMAGE_EXTS == (".jpg", ".jpeg", ".png", ".bmp", ".webp")
    for name in ("a.JPG", "b.webp", "c.txt", "d.png", "sub/e.bmp", "f.gif"):
        (tmp_path / name).parent.mkdir(exist_ok=True)
        (tmp_path / name).write_bytes(b"x")
    assert [p.relative_to(tmp_path).as_posix() for p in list_images(tmp_path)] == ["a.JPG", "b.webp", "d.png",
                                                                                   "sub/e.bmp"]


def test_dataset_options_are_checked_in_one_place(tmp_path):
    from reid.builders import build_dataset_from_config
    from reid.data.datasets import DatasetError, build_dataset, dataset_options, unknown_options

    assert unknown_options("synthetic", {"zzz": 1, "aaa": 2}) == (["aaa", "zzz"], dataset_options("synthetic"))
    assert unknown_options("synthetic", {}) == ([], dataset_options("synthetic"))
    with pytest.raises(KeyError, match="unknown dataset 'nope'"):
        unknown_options("nope", {})
    valid = ", ".join(dataset_options("synthetic"))
    with pytest.raises(DatasetError) as info:
        build_dataset("synthetic", str(tmp_path), zzz=1)
    assert str(info.value) == f"dataset 'synthetic': unknown option(s) zzz; valid: {valid}"
    cfg = load_config(None, ["data.dataset=synthetic", f"data.root={tmp_path}", "data.kwargs.zzz=1"])
    with pytest.raises(ConfigError) as info:
        build_dataset_from_config(cfg, yyy=2)
    assert str(info.value) == (f"unknown option(s) test.dataset_kwargs.yyy, data.kwargs.zzz for dataset 'synthetic'; "
                               f"valid: {valid}")
