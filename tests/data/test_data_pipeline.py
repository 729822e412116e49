"""Augmentation pipelines, image reading and loaders, own-data adapters (the sampler: test_data_sampler.py)."""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from reid.data import (ImageDataset, ImageReadError, build_dataset, build_test_loader,
                       build_train_loader, build_transforms, read_image)


@dataclass
class S:
    path: str
    pid: int
    camid: int = 0
    extras: dict = field(default_factory=dict)


@pytest.mark.parametrize("cfg", [{"height": 32, "width": 16}, {"height": 32, "width": 16, "pad": 0,
                                                               "random_resized_crop": {"scale": [0.5, 1.0]},
                                                               "color_jitter": 1.0}])
def test_transforms_shapes_and_normalisation(cfg):
    img = np.random.default_rng(0).integers(0, 255, (50, 20, 3), dtype=np.uint8)
    for train in (True, False):
        out = build_transforms(cfg, train=train)(image=img)["image"]
        assert out.shape == (3, 32, 16) and out.dtype == torch.float32
    test = build_transforms(cfg, train=False)(image=np.full((8, 4, 3), 124, np.uint8))["image"]
    assert abs(float(test[0].mean()) - (124 / 255 - 0.485) / 0.229) < 0.05
    with pytest.raises(ValueError, match="unknown key.*heigth"):
        build_transforms({"heigth": 10}, train=True)


def test_train_transform_is_reproducible_with_a_seed():
    t = build_transforms({"height": 32, "width": 16}, train=True)
    img = np.random.default_rng(1).integers(0, 255, (40, 20, 3), dtype=np.uint8)
    t.set_random_seed(7)
    a = t(image=img)["image"]
    t.set_random_seed(7)
    assert torch.equal(a, t(image=img)["image"])


@pytest.fixture()
def images(tmp_path):
    samples = []
    for i in range(12):
        p = tmp_path / f"{i}.jpg"
        cv2.imwrite(str(p), np.full((20, 10, 3), i * 10, np.uint8))
        samples.append(S(str(p), i // 3, i % 2, {"attributes": [0.0, 1.0]} if i == 0 else {}))
    return samples


def test_read_image_rgb_and_errors(tmp_path):
    p = tmp_path / "x.png"
    img = np.zeros((4, 3, 3), np.uint8)
    img[..., 0] = 255  # blue in BGR
    cv2.imwrite(str(p), img)
    assert read_image(str(p))[0, 0].tolist() == [0, 0, 255]
    bad = tmp_path / "bad.jpg"
    bad.write_bytes(b"garbage")
    with pytest.raises(ImageReadError, match="bad.jpg"):
        read_image(str(bad))


def test_skip_mode_replaces_and_counts(images, tmp_path):
    Path(images[1].path).write_bytes(b"corrupt")
    ds = ImageDataset(images, build_transforms({"height": 8, "width": 4}, train=False), on_error="skip")
    with pytest.warns(UserWarning, match="skipping unreadable"):
        item = ds[1]
    assert ds.skipped == 1 and item["pid"] == 0
    with pytest.raises(ImageReadError):
        ImageDataset(images, None)[1]


def test_loaders_batches(images):
    train = build_train_loader([s for s in images if s.pid < 3], {"height": 8, "width": 4}, p=3, k=2)
    batch = next(iter(train))
    assert batch["img"].shape == (6, 3, 8, 4) and set(batch) >= {"img", "pid", "camid", "index"}
    test = build_test_loader(images, {"height": 8, "width": 4}, batch_size=5)
    batches = list(test)
    assert [len(b["pid"]) for b in batches] == [5, 5, 2]
    assert torch.equal(torch.cat([b["index"] for b in batches]), torch.arange(12))
    assert batches[0]["attributes"][0].tolist() == [0.0, 1.0]
    assert torch.isnan(batches[0]["attributes"][1]).all()  # unknown attributes


def test_folder_and_csv_adapters(tmp_path):
    for split, people in (("train", ["anna", "bob"]), ("query", ["carl"]), ("gallery", ["carl", "dora"])):
        for person in people:
            folder = tmp_path / "own" / split / person
            folder.mkdir(parents=True)
            for cam in (1, 2):
                cv2.imwrite(str(folder / f"img_cam{cam}.jpg"), np.zeros((8, 4, 3), np.uint8))
    ds = build_dataset("folder", str(tmp_path / "own"))
    assert not ds.has_cameras and ds.num_train_pids == 2 and len(ds.gallery) == 4
    cams = build_dataset("folder", str(tmp_path / "own"), camera_regex=r"cam(\d)")
    assert cams.has_cameras and {s.camid for s in cams.query} == {1, 2}
    with pytest.raises(ValueError, match="camera_regex"):
        build_dataset("folder", str(tmp_path / "own"), camera_regex=r"view(\d)")
    csv = tmp_path / "list.csv"
    csv.write_text("path,pid,camid,split\nown/train/anna/img_cam1.jpg,5,1,train\nown/query/carl/img_cam1.jpg,7,1,"
                   "query\nown/gallery/carl/img_cam2.jpg,7,2,gallery\n")
    ds = build_dataset("csv", str(tmp_path), file="list.csv")
    assert ds.has_cameras and ds.train[0].pid == 0 and Path(ds.query[0].path).is_file()
    csv.write_text("path,pid,split\nx.jpg,1,train\n")
    with pytest.raises(ValueError, match="missing column.*camid"):
        build_dataset("csv", str(tmp_path), file="list.csv")
    csv.write_text("path,pid,camid,split\nx.jpg,1,0,val\n")
    with pytest.raises(ValueError, match="list.csv:2: split 'val'"):
        build_dataset("csv", str(tmp_path), file="list.csv")
