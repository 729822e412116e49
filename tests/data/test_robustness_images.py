"""Issue 16 items 4 and 5: empty and truncated images are found up front, named, and handled by data.on_error."""
from __future__ import annotations

import hashlib
import warnings
from pathlib import Path

import cv2
import numpy as np
import pytest

from reid.data.datasets.base import Sample
from reid.data.image_io import ImageReadError, apply_error_policy, check_images, read_image


def _digest(paths):
    return {str(p): hashlib.sha256(Path(p).read_bytes()).hexdigest() for p in paths}


@pytest.fixture()
def images(tmp_path):
    """good.jpg, good.png, empty.jpg (0 bytes), cut.jpg / cut.png (second half missing), text.jpg (not an image)."""
    rng = np.random.default_rng(0)
    array = rng.integers(0, 255, (64, 32, 3), dtype=np.uint8)
    good_jpg, good_png = tmp_path / "good.jpg", tmp_path / "good.png"
    cv2.imwrite(str(good_jpg), array)
    cv2.imwrite(str(good_png), array)
    (tmp_path / "empty.jpg").write_bytes(b"")
    data = good_jpg.read_bytes()
    (tmp_path / "cut.jpg").write_bytes(data[: len(data) // 2])
    png = good_png.read_bytes()
    (tmp_path / "cut.png").write_bytes(png[: len(png) - 20])
    (tmp_path / "text.jpg").write_text("hello, not a picture")
    (tmp_path / "padded.jpg").write_bytes(data + b"\x00\x00\n")  # padding after the end marker is not damage
    return tmp_path


def test_truncated_jpeg_is_refused_with_its_name(images):
    # cv2 alone decodes it (grey fill): the failure this test guards against
    assert cv2.imread(str(images / "cut.jpg")) is not None
    with pytest.raises(ImageReadError, match=r"cut\.jpg: truncated JPEG \(libjpeg: Premature end of JPEG file\)"):
        read_image(images / "cut.jpg")
    with pytest.raises(ImageReadError, match=r"cut\.png: truncated PNG"):
        read_image(images / "cut.png")


@pytest.mark.parametrize("name, reason", [("empty.jpg", "empty file (0 bytes)"), ("text.jpg", "not an image"),
                                          ("missing.jpg", "file not found")])
def test_read_image_names_file_and_reason(images, name, reason):
    with pytest.raises(ImageReadError) as info:
        read_image(images / name)
    assert str(images / name) in str(info.value) and reason in str(info.value)


def test_read_image_good_files_unchanged(images):
    before = _digest([images / "good.jpg", images / "good.png"])
    jpg, png, padded = (read_image(images / n) for n in ("good.jpg", "good.png", "padded.jpg"))
    assert jpg.shape == png.shape == (64, 32, 3) and jpg.dtype == np.uint8
    # PNG is lossless: RGB order restored exactly
    expected = cv2.cvtColor(cv2.imread(str(images / "good.png")), cv2.COLOR_BGR2RGB)
    assert np.array_equal(png, expected)
    assert np.array_equal(padded, jpg)
    assert _digest([images / "good.jpg", images / "good.png"]) == before


def test_check_images_lists_every_bad_file_without_touching_any(images):
    paths = [images / n for n in ("good.jpg", "empty.jpg", "cut.jpg", "good.png", "cut.png", "text.jpg",
                                  "missing.jpg", "padded.jpg")]
    existing = [p for p in paths if p.exists()]
    before = _digest(existing)
    bad = check_images(paths)
    assert [Path(p).name for p, _ in bad] == ["empty.jpg", "cut.jpg", "cut.png", "text.jpg", "missing.jpg"]
    reasons = dict((Path(p).name, r) for p, r in bad)
    assert reasons["empty.jpg"] == "empty file (0 bytes)"
    assert reasons["cut.jpg"].startswith("truncated JPEG")
    assert reasons["missing.jpg"] == "file not found"
    assert _digest(existing) == before


def test_check_images_threads_give_the_same_answer(images):
    paths = [images / n for n in ("good.jpg", "cut.jpg", "empty.jpg")] * 200
    assert check_images(paths, workers=4) == check_images(paths, workers=1)
    assert len(check_images(paths, workers=4)) == 400


def _samples(images):
    return [Sample(str(images / "good.jpg"), 0, 0, {"orig_pid": 7}),
            Sample(str(images / "empty.jpg"), 0, 1, {"orig_pid": 7}),
            Sample(str(images / "cut.jpg"), 1, 0, {"orig_pid": 9}),
            Sample(str(images / "good.png"), 2, 0, {"orig_pid": 11})]


def test_policy_raise_lists_all_bad_files_in_one_error(images):
    samples = _samples(images)
    bad = check_images(s.path for s in samples)
    with pytest.raises(ImageReadError) as info:
        apply_error_policy(samples, bad, "raise")
    message = str(info.value)
    assert message.startswith("2 unreadable image(s): ")
    assert "empty.jpg (empty file (0 bytes))" in message and "cut.jpg (truncated JPEG" in message
    assert "data.on_error=skip" in message and "\n" not in message


def test_policy_on_a_test_split_never_suggests_skipping(images):
    """Issue 28.20: data.on_error=skip was suggested for query/gallery files, where it has no effect."""
    samples = _samples(images)
    with pytest.raises(ImageReadError) as info:
        apply_error_policy(samples, check_images(s.path for s in samples), "raise", "query")
    message = str(info.value)
    assert message.startswith("2 unreadable query image(s): ") and "empty.jpg" in message
    assert "on_error=skip" not in message and "training split only" in message


def test_policy_raise_names_first_ten_and_counts_the_rest(tmp_path):
    paths = [tmp_path / f"{i:02d}.jpg" for i in range(25)]
    for p in paths:
        p.write_bytes(b"")
    bad = check_images(paths)
    samples = [Sample(str(p), 0, 0) for p in paths]
    with pytest.raises(ImageReadError, match=r"25 unreadable image\(s\): .*09\.jpg \(empty.*; and 15 more\."):
        apply_error_policy(samples, bad, "raise")


def test_policy_skip_drops_bad_files_and_reports_emptied_identities(images):
    samples = _samples(images)
    bad = check_images(s.path for s in samples)
    with pytest.warns(UserWarning) as record:
        kept = apply_error_policy(samples, bad, "skip")
    assert [Path(s.path).name for s in kept] == ["good.jpg", "good.png"]
    assert len(record) == 1
    message = str(record[0].message)
    assert "leaving out 2 unreadable image(s)" in message
    # identity 9 had only cut.jpg: named; identity 7 kept good.jpg: not named
    assert message.endswith("1 identity left with no image, dropped: 9")


def test_policy_no_bad_files_is_silent_and_rejects_unknown_policy(images):
    samples = _samples(images)[:1]
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert apply_error_policy(samples, [], "skip") == samples
    with pytest.raises(ValueError, match="data.on_error: expected 'raise' or 'skip', got 'ignore'"):
        apply_error_policy(samples, [], "ignore")
