"""Issue 29 item 17: more torchreid / fast-reid config names are understood (moved when they mean the same) or
explained (when they do not), instead of a nearest-spelling guess such as "did you mean train.epochs?"."""
from __future__ import annotations

import pytest

from reid.config import ConfigError, load_config


@pytest.mark.parametrize("override, expected", [
    ("MODEL.BACKBONE.NAME=build_resnet_backbone", "model.backbone=resnet50"),
    ("MODEL.BACKBONE.DEPTH=50x", "MODEL.BACKBONE.DEPTH its depth"),
    ("train.fixbase_epoch=5", "every layer trains from the first step"),
    ("train.open_layers=[classifier]", "schedule.warmup_epochs"),
    ("model.heads.num_classes=751", "one output per training identity"),
    ("loss.triplet.margin=0.3", "loss.terms: [{name: triplet, margin: 0.3}]"),
    ("loss.softmax.label_smooth=true", "label_smoothing: 0.1"),
    ("train.start_epoch=3", "--resume"),
    ("test.visrank=true", "--visualize"),
    ("test.evaluate=true", "reid-test --checkpoint"),
])
def test_names_with_another_meaning_are_explained(override, expected):
    with pytest.raises(ConfigError) as info:
        load_config("synthetic_quick", [override])
    message = str(info.value)
    key = override.split("=")[0]
    assert f"config key '{key}'" in message and expected in message and "did you mean" not in message
    assert "\n" not in message


@pytest.mark.parametrize("override, key, value", [
    ("MODEL.BACKBONE.LAST_STRIDE=2", ("model", "last_stride"), 2),
    ("MODEL.HEADS.EMBEDDING_DIM=64", ("model", "embedding_dim"), 64),
    ("SOLVER.CHECKPOINT_PERIOD=3", ("train", "checkpoint_every"), 3),
    ("OUTPUT_DIR=runs/from_fastreid", ("output_dir",), "runs/from_fastreid"),
    ("data.save_dir=runs/from_torchreid", ("output_dir",), "runs/from_torchreid"),
])
def test_names_with_the_same_meaning_are_moved(override, key, value):
    cfg = load_config("synthetic_quick", [override])
    for part in key:
        cfg = cfg[part]
    assert cfg == value


def test_a_fast_reid_style_yaml_file_is_explained_by_its_nested_key(tmp_path):
    path = tmp_path / "fastreid.yaml"
    path.write_text("_base_: synthetic_quick\nMODEL:\n  BACKBONE:\n    NAME: build_resnet_backbone\n"
                    "    LAST_STRIDE: 1\n")
    with pytest.raises(ConfigError, match=r"config key 'MODEL.BACKBONE.NAME' in .*fastreid.yaml.*"
                                          r"model.backbone=resnet50"):
        load_config(str(path))
