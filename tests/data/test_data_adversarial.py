"""Adversarial data cases (issue 28): a Market-like folder that is not the release, own-data CSV duplicates."""
from __future__ import annotations

from pathlib import Path

import pytest

from engine_helpers import config_file, tiny_config
from reid.cli import train_main

TERMS = [{"name": "softmax"}, {"name": "triplet"}]
TRAIN = {"epochs": 1, "iters_per_epoch": 1, "eval_every": 1, "projector_samples": 0}


def test_market_lookup_never_takes_the_synthetic_set_or_a_renamed_copy(tiny_market, tmp_path, capsys):
    # data.root=<folder holding only the synthetic set>: before, the '*arket*' glob trained and evaluated on it
    cfg = tiny_config(tmp_path / "run", tiny_market.parent, TERMS, {"classifier": "linear"}, train=TRAIN)
    assert train_main(["--config", str(config_file(cfg)), "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and f"found {tiny_market}" in err and "data.dataset=synthetic" in err
    assert "Market-1501-v15.09.15" in err
    assert not (tmp_path / "run").exists()  # nothing written

    renamed = tmp_path / "data" / "market-copy"
    (renamed / "bounding_box_train").mkdir(parents=True)
    cfg = tiny_config(tmp_path / "run2", renamed.parent, TERMS, {"classifier": "linear"}, train=TRAIN)
    assert train_main(["--config", str(config_file(cfg)), "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert f"found {renamed}, not named Market-1501-v15.09.15 (if it is the release: data.root={renamed})" in err
    assert not (tmp_path / "run2").exists()
    assert sorted(p.name for p in renamed.iterdir()) == ["bounding_box_train"]  # the data is untouched


def _own_csv(root: Path, rows: list, bom: bool = False) -> Path:
    import cv2
    import numpy as np

    for row in rows:
        (root / row[0]).parent.mkdir(parents=True, exist_ok=True)
        cv2.imwrite(str(root / row[0]), np.zeros((8, 4, 3), np.uint8))
    text = "path,pid,camid,split\n" + "".join(",".join(map(str, r)) + "\n" for r in rows)
    csv_path = root / "dataset.csv"
    csv_path.write_bytes(("\ufeff" if bom else "").encode("utf-8") + text.encode("utf-8"))
    return csv_path


BASE_ROWS = [("t/a.png", 1, 0, "train"), ("t/b.png", 2, 1, "train"), ("q/c.png", 3, 0, "query"),
             ("g/d.png", 3, 1, "gallery")]


@pytest.mark.parametrize("extra,what", [
    (("t/a.png", 1, 0, "train"), "t/a.png twice (lines 2 and 6)"),
    (("t/a.png", 7, 0, "train"), "t/a.png under two ids (1 and 7) (lines 2 and 6)"),
    (("q/c.png", 3, 1, "gallery"), "q/c.png in both query and gallery (lines 4 and 6)"),
])
def test_csv_rows_listing_one_image_twice_are_refused(extra, what, tmp_path):
    from reid.data.datasets import DatasetError, build_dataset

    csv_path = _own_csv(tmp_path, BASE_ROWS + [extra])
    before = csv_path.read_bytes()
    with pytest.raises(DatasetError) as info:
        build_dataset("csv", str(tmp_path))
    assert str(csv_path) in str(info.value) and "1 image(s) listed more than once" in str(info.value)
    assert what in str(info.value)
    assert csv_path.read_bytes() == before  # the listing is untouched


def test_csv_with_a_utf8_byte_order_mark_is_read(tmp_path):
    from reid.data.datasets import build_dataset

    _own_csv(tmp_path, BASE_ROWS, bom=True)  # Excel's "CSV UTF-8"; before: "missing column(s) path"
    ds = build_dataset("csv", str(tmp_path))
    assert (len(ds.train), len(ds.query), len(ds.gallery)) == (2, 1, 1)


def _jpeg_pair(folder: Path):
    """good.jpg, middle.jpg (40 bytes of its compressed data zeroed, end marker intact) and tail.jpg (good.jpg with
    bytes after its end marker, as phone cameras write)."""
    import cv2
    import numpy as np

    image = cv2.GaussianBlur(np.random.default_rng(0).integers(0, 255, (64, 32, 3), dtype=np.uint8), (5, 5), 0)
    data = cv2.imencode(".jpg", image)[1].tobytes()
    start = data.index(b"\xff\xda")  # start of scan: the compressed pixels follow
    middle = bytearray(data)
    at = (start + len(data)) // 2
    middle[at:at + 40] = bytes(40)
    (folder / "good.jpg").write_bytes(data)
    (folder / "middle.jpg").write_bytes(bytes(middle))
    (folder / "tail.jpg").write_bytes(data + b"\x00MakerNote trailer\xff\xd8 appended by a camera" * 4)
    return [folder / n for n in ("good.jpg", "middle.jpg", "tail.jpg")]


def test_jpeg_damaged_in_the_middle_is_found_and_bytes_after_its_end_are_accepted(tmp_path):
    import cv2
    import numpy as np

    from reid.data.image_io import ImageReadError, check_images, read_image

    good, middle, tail = _jpeg_pair(tmp_path)
    assert middle.read_bytes().endswith(b"\xff\xd9")  # no marker check can see this damage
    assert cv2.imread(str(middle)) is not None  # OpenCV decodes it silently: what this test guards against
    before = {p: p.read_bytes() for p in (good, middle, tail)}
    with pytest.raises(ImageReadError, match=rf"{middle.name}: damaged JPEG \(libjpeg: Corrupt JPEG data"):
        read_image(middle)
    assert np.array_equal(read_image(tail), read_image(good))
    bad = check_images([good, middle, tail])
    assert [(Path(p).name, r.split(" (")[0]) for p, r in bad] == [("middle.jpg", "damaged JPEG")]
    assert {p: p.read_bytes() for p in (good, middle, tail)} == before
