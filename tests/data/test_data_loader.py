"""read_image, ImageDataset (raise / skip) and the train / test loaders' batch contract."""
from dataclasses import dataclass, field

import cv2
import numpy as np
import pytest
import torch

from reid.data.cache import decode_in_memory
from reid.data.loader import ImageDataset, ImageReadError, build_test_loader, read_image
from reid.data.train_loader import build_train_loader
from reid.data.transforms import build_transforms

SMALL = {"height": 16, "width": 8}


@dataclass
class S:
    path: str
    pid: int
    camid: int
    extras: dict = field(default_factory=dict)


def _write(tmp_path, n_ids=4, per_id=3, attributes=False):
    samples = []
    for pid in range(n_ids):
        for j in range(per_id):
            p = tmp_path / f"{pid:04d}_{j}.png"
            cv2.imwrite(str(p), np.full((12, 6, 3), 10 * pid + j, np.uint8))
            extras = {"attributes": [pid % 2, 1.0]} if attributes else {}
            samples.append(S(str(p), pid, j % 2, extras))
    return samples


def test_read_image_is_rgb_uint8(tmp_path):
    p = tmp_path / "red.png"
    img = np.zeros((5, 4, 3), np.uint8)
    img[..., 2] = 255  # red in OpenCV's BGR order
    cv2.imwrite(str(p), img)
    out = read_image(str(p))
    assert out.dtype == np.uint8 and out.shape == (5, 4, 3) and out[0, 0].tolist() == [255, 0, 0]


@pytest.mark.parametrize("content", [b"", b"not a jpeg at all", None])
def test_read_image_corrupt_or_missing_names_path(tmp_path, content):
    p = tmp_path / "broken.jpg"
    if content is not None:
        p.write_bytes(content)
    with pytest.raises(ImageReadError, match="broken.jpg"):
        read_image(str(p))


def test_skip_mode_warns_counts_and_replaces_with_same_id(tmp_path):
    samples = _write(tmp_path)
    open(samples[4].path, "wb").write(b"corrupt")  # pid 1, second image
    ds = ImageDataset(samples, None, on_error="skip")
    with pytest.warns(UserWarning, match="0001_1.png"):
        item = ds[4]
    assert ds.skipped == 1 and item["pid"] == 1 and item["index"] == 4
    assert int(item["img"][0, 0, 0]) in (10, 12)  # pixels of another pid-1 image
    with pytest.raises(ImageReadError, match="0001_1.png"):
        ImageDataset(samples, None)[4]


def test_skip_mode_raises_when_identity_has_no_readable_image(tmp_path):
    samples = _write(tmp_path, per_id=1)
    open(samples[0].path, "wb").write(b"")
    with pytest.warns(UserWarning), pytest.raises(ImageReadError):
        ImageDataset(samples, None, on_error="skip")[0]
    with pytest.raises(ValueError, match="'ignore'"):
        ImageDataset(samples, None, on_error="ignore")


@pytest.mark.parametrize("pipeline", ["tensor", "albumentations"])
def test_train_loader_batches_follow_contract(pipeline, tmp_path):
    samples = _write(tmp_path, attributes=True)
    loader = build_train_loader(samples, SMALL, p=2, k=3, seed=0, pipeline=pipeline)
    batches = list(loader)
    assert len(batches) == len(loader) == 2
    for b in batches:
        assert b["img"].shape == (6, 3, 16, 8) and b["img"].dtype == torch.float32
        for key in ("pid", "camid", "index"):
            assert b[key].shape == (6,) and b[key].dtype == torch.long
        assert b["attributes"].shape == (6, 2) and b["attributes"].dtype == torch.float32
        assert [samples[i].pid for i in b["index"].tolist()] == b["pid"].tolist()
    again = list(build_train_loader(samples, SMALL, p=2, k=3, seed=0, pipeline=pipeline))
    assert all(torch.equal(x["img"], y["img"]) for x, y in zip(batches, again))  # reproducible augmentation


def test_train_loader_with_worker_is_reproducible(tmp_path):
    samples = _write(tmp_path)
    runs = [torch.cat([b["img"] for b in build_train_loader(samples, SMALL, p=2, k=2, seed=4, num_workers=1,
                                                               pipeline="albumentations")])
            for _ in range(2)]
    assert torch.equal(runs[0], runs[1])


def test_test_loader_is_ordered(tmp_path):
    samples = _write(tmp_path)
    batches = list(build_test_loader(samples, SMALL, batch_size=5))
    assert [len(b["pid"]) for b in batches] == [5, 5, 2]
    assert torch.cat([b["index"] for b in batches]).tolist() == list(range(12))
    expected = build_transforms(SMALL, train=False)(image=read_image(samples[7].path))["image"]
    assert torch.equal(batches[1]["img"][2], expected)
    assert "attributes" not in batches[0]


def test_train_loader_starts_mid_epoch_with_the_same_batches(tmp_path):
    samples = _write(tmp_path)
    loader = build_train_loader(samples, SMALL, p=2, k=2, seed=1, iters_per_epoch=5)
    loader.set_epoch(3)
    whole = list(loader)
    loader.set_epoch(3, start_batch=2)
    assert len(loader) == 3
    tail = list(loader)
    assert all(torch.equal(a["img"], b["img"]) and torch.equal(a["index"], b["index"])
               for a, b in zip(whole[2:], tail))


def test_decoded_test_loader_equals_the_per_file_loader(tmp_path):
    samples = _write(tmp_path, attributes=True)
    decoded, bad = decode_in_memory([s.path for s in samples], 16, 8)
    assert bad == []
    fast = list(build_test_loader(samples, SMALL, batch_size=5, decoded=decoded))
    slow = list(build_test_loader(samples, SMALL, batch_size=5))
    assert len(fast) == len(slow) == 3
    for a, b in zip(fast, slow):
        torch.testing.assert_close(a["img"], b["img"], atol=1e-5, rtol=1e-5)
        for key in ("pid", "camid", "index"):
            assert torch.equal(a[key], b[key])
        torch.testing.assert_close(a["attributes"], b["attributes"], equal_nan=True)
