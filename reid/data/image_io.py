"""Reading images strictly, and checking every image of a dataset up front.

Why strict: OpenCV decodes a truncated or damaged JPEG without error, filling the missing rows with grey, and only
libjpeg's "Premature end of JPEG file" / "Corrupt JPEG data" on stderr (naming no file) tells; a training or
evaluation run would then go on silently on damaged data. So JPEGs are decoded by libjpeg-turbo through
simplejpeg with `strict=True`, which turns those very libjpeg warnings into an error: damage in the middle of a
file is found (its end marker is intact, so no marker check can see it), while bytes after the end-of-image
marker (phone cameras append them) are not damage and libjpeg, which stops at that marker, accepts them.
OpenCV decodes the other formats; PNG must end with its IEND chunk, BMP / WebP be as long as their headers say.

`check_images` decodes every file the same way (a small re-ID crop takes about 0.1 ms), so a dataset's bad files
are all found before training starts, and `apply_error_policy` turns that list into one error
(data.on_error=raise) or one warning (skip), instead of a traceback mid-epoch.
"""
from __future__ import annotations

import os
import warnings
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, Iterable, List, Optional, Sequence, Tuple, Union

import cv2
import numpy as np
import simplejpeg

from ..registry import CHOICES

PathLike = Union[str, Path]

JPEG_MAGIC = b"\xff\xd8\xff"
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
PNG_IEND = b"IEND\xaeB`\x82"  # the chunk type and its (constant) CRC: the last 8 bytes of every complete PNG
TAIL_BYTES = 64
SHOWN = 10  # bad files named in one message; the rest are counted
ON_ERROR = CHOICES["data.on_error"]  # what an unreadable image does: the config's data.on_error values
IMAGE_EXTS = (".jpg", ".jpeg", ".png", ".bmp", ".webp")  # image files by name: own-data folders, the demo's gallery


class ImageReadError(OSError):
    """An image file that is missing, empty, truncated or not decodable; the message names the file."""


def _format(header: bytes) -> Optional[str]:
    if header.startswith(JPEG_MAGIC):
        return "JPEG"
    if header.startswith(PNG_MAGIC):
        return "PNG"
    if header.startswith(b"BM"):
        return "BMP"
    if header[:4] == b"RIFF" and header[8:12] == b"WEBP":
        return "WebP"
    if header[:4] in (b"II*\x00", b"MM\x00*"):
        return "TIFF"
    if len(header) > 1 and header[:1] == b"P" and header[1:2] in b"123456":
        return "PNM"
    return None


def _problem(header: bytes, tail: bytes, size: int) -> Optional[str]:
    """Why a file of `size` bytes starting with `header` and ending with `tail` is not a complete image (or None)."""
    if size == 0:
        return "empty file (0 bytes)"
    kind = _format(header)
    if kind is None:
        return f"not an image (unrecognised header {header[:8]!r}; expected JPEG, PNG, BMP, WebP, TIFF or PNM)"
    if kind == "PNG":
        if not tail.endswith(PNG_IEND):
            return "truncated PNG (no IEND chunk at the end of the file)"
    elif kind == "BMP":
        declared = int.from_bytes(header[2:6], "little") if len(header) >= 6 else 0
        if declared and size < declared:
            return f"truncated BMP ({size} bytes, header declares {declared})"
    elif kind == "WebP":
        declared = int.from_bytes(header[4:8], "little") + 8
        if size < declared:
            return f"truncated WebP ({size} bytes, header declares {declared})"
    return None


# libjpeg's warnings that mean the compressed data itself is damaged (jerror.h: JWRN_JPEG_EOF, JWRN_HIT_MARKER,
# JWRN_EXTRANEOUS_DATA, JWRN_HUFF_BAD_CODE, ...); others ("Warning: unknown JFIF revision", a thumbnail's size) are
# notes about metadata, and the pixels are whole.
_JPEG_DAMAGE = ("Premature end of JPEG file", "Corrupt JPEG data", "Invalid SOS parameters",
                "Inconsistent progression sequence")


def _decode(data: np.ndarray) -> np.ndarray:
    """RGB uint8 image of the file's bytes; `ValueError(reason)` when they are not a complete, undamaged image."""
    problem = _problem(data[:16].tobytes(), data[-TAIL_BYTES:].tobytes(), int(data.size))
    if problem is not None:
        raise ValueError(problem)
    if _format(data[:16].tobytes()) == "JPEG":
        try:
            return simplejpeg.decode_jpeg(data, colorspace="RGB", strict=True)
        except ValueError as exc:
            reason = str(exc)
        if reason.startswith("Premature end of JPEG file"):
            raise ValueError(f"truncated JPEG (libjpeg: {reason})")
        if reason.startswith(_JPEG_DAMAGE):
            raise ValueError(f"damaged JPEG (libjpeg: {reason})")
        if reason.startswith("Warning"):
            return simplejpeg.decode_jpeg(data, colorspace="RGB", strict=False)
        # what TurboJPEG's API refuses but libjpeg may still read (an unusual subsampling): OpenCV's own libjpeg
        img = cv2.imdecode(data, cv2.IMREAD_COLOR)
        if img is None:
            # a file cut inside its headers has no end marker: say truncated, the likelier cause for the user
            cut = b"\xff\xd9" not in data[2:].tobytes()
            raise ValueError(f"{'truncated JPEG' if cut else 'not decodable'} (libjpeg: {reason})")
        return cv2.cvtColor(img, cv2.COLOR_BGR2RGB)
    img = cv2.imdecode(data, cv2.IMREAD_COLOR)
    if img is None:
        raise ValueError("not decodable (corrupt image data)")
    return cv2.cvtColor(img, cv2.COLOR_BGR2RGB)


def _read(path: PathLike) -> np.ndarray:
    """`read_image` with the bare reason as `ValueError`, for `check_images` to list beside the path."""
    try:
        data = np.fromfile(str(path), dtype=np.uint8)
    except FileNotFoundError:
        raise ValueError("file not found") from None
    except IsADirectoryError:
        raise ValueError("a folder, not an image file") from None
    except OSError as exc:
        raise ValueError(f"cannot open ({exc.strerror or exc})") from None
    return _decode(data)


def _check_file(path: PathLike) -> Optional[str]:
    """The reason `path` is not a usable image, decoding it as `read_image` does; None when it is fine."""
    try:
        _read(path)
    except ValueError as exc:
        return str(exc)
    return None


def read_image(path: PathLike) -> np.ndarray:
    """RGB uint8 (H, W, 3) image; `ImageReadError` naming the file when it is missing, empty, truncated, damaged
    or not decodable (JPEGs through libjpeg's strict mode, since OpenCV accepts damaged ones; see module doc)."""
    try:
        return _read(path)
    except ValueError as exc:
        raise ImageReadError(f"cannot read image {path}: {exc}") from None


def check_images(paths: Iterable[PathLike], workers: Optional[int] = None) -> List[Tuple[str, str]]:
    """[(path, reason)] for every file of `paths` that is not a complete image, in the order given.

    Decodes every file as `read_image` does (only a full decode finds damage inside a JPEG; Market-1501's 36k
    crops take a few seconds); threads overlap the decoding and the file-system latency of network drives.
    `workers` None = up to 8 threads.
    """
    paths = [str(p) for p in paths]
    if workers is None:
        workers = min(8, (os.cpu_count() or 1) * 2)
    if workers <= 1 or len(paths) < 256:
        reasons = [_check_file(p) for p in paths]
    else:
        with ThreadPoolExecutor(max_workers=workers) as pool:
            reasons = list(pool.map(_check_file, paths, chunksize=256))
    return [(p, r) for p, r in zip(paths, reasons) if r is not None]


def describe_bad(bad: Sequence[Tuple[str, str]], shown: int = SHOWN) -> str:
    """'a.jpg (empty file); b.jpg (truncated JPEG ...) and 3 more': one line, however many files are bad."""
    text = "; ".join(f"{p} ({r})" for p, r in bad[:shown])
    return text + (f"; and {len(bad) - shown} more" if len(bad) > shown else "")


def apply_error_policy(samples: Sequence[Any], bad: Sequence[Tuple[str, str]], on_error: str,
                       split: str = "train") -> List[Any]:
    """Apply data.on_error to the bad files found by `check_images` among `samples` (objects with `.path`, `.pid`).

    "raise": one `ImageReadError` listing every bad file (first ten named, the rest counted), so the user fixes
    them all in one go rather than one per run; `split` other than "train" (query, gallery: every image counts in
    the protocol) never suggests skipping, which does not apply there. "skip": the samples without the bad files, after one warning;
    identities left with no image at all are named in the warning (they drop out of the split rather than fail
    later when an image of theirs is requested).
    """
    if on_error not in ON_ERROR:
        raise ValueError(f"data.on_error: expected {' or '.join(map(repr, ON_ERROR))}, got {on_error!r}")
    samples = list(samples)
    if not bad:
        return samples
    if on_error == "raise":
        if split != "train":
            raise ImageReadError(f"{len(bad)} unreadable {split} image(s): {describe_bad(bad)}. Replace or remove "
                                 f"them (data.on_error applies to the training split only: every {split} image "
                                 "counts in the evaluation)")
        raise ImageReadError(f"{len(bad)} unreadable image(s): {describe_bad(bad)}. Replace or remove them, or set "
                             "data.on_error=skip to leave them out")
    bad_paths = {str(p) for p, _ in bad}
    kept = [s for s in samples if str(s.path) not in bad_paths]
    before = {_display_id(s) for s in samples}
    after = {_display_id(s) for s in kept}
    lost = sorted(before - after, key=str)
    message = f"data.on_error=skip: leaving out {len(samples) - len(kept)} unreadable image(s): {describe_bad(bad)}"
    if lost:
        names = ", ".join(str(i) for i in lost[:SHOWN]) + (f" and {len(lost) - SHOWN} more" if len(lost) > SHOWN
                                                           else "")
        message += f". {len(lost)} identit{'y' if len(lost) == 1 else 'ies'} left with no image, dropped: {names}"
    warnings.warn(message, stacklevel=2)
    return kept


def _display_id(sample: Any) -> Any:
    """The identity as the user knows it: train samples are relabelled 0..C-1, the original id is in extras."""
    extras = getattr(sample, "extras", None) or {}
    return extras.get("identity", extras.get("orig_pid", sample.pid))
