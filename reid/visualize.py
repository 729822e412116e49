"""Rank-list images: a query and its top-k gallery matches with distances, shared by test.py, the demo and
TensorBoard. True matches / other ids get green / red borders, items the protocol ignores (junk, same camera)
amber, unknown identities grey."""
from __future__ import annotations

from pathlib import Path
from typing import Optional, Sequence, Tuple, Union

import cv2
import numpy as np

from .utils import atomic_path
from .utils.optional import optional_module

ImageLike = Union[str, Path, np.ndarray]

GREEN = (40, 170, 40)
RED = (220, 40, 40)
GREY = (150, 150, 150)
BLUE = (40, 90, 220)
AMBER = (235, 160, 20)


def _load_rgb(image: ImageLike) -> np.ndarray:
    if isinstance(image, np.ndarray):
        return image
    data = cv2.imread(str(image), cv2.IMREAD_COLOR)
    if data is None:
        # Keep the rank list drawable even if one file vanished since indexing.
        placeholder = np.full((128, 64, 3), 200, np.uint8)
        cv2.line(placeholder, (0, 0), (63, 127), (120, 120, 120), 2)
        return placeholder
    return cv2.cvtColor(data, cv2.COLOR_BGR2RGB)


def _thumbnail(image: np.ndarray, size: Tuple[int, int], border: Tuple[int, int, int], width: int) -> np.ndarray:
    h, w = size
    thumb = cv2.resize(image, (w - 2 * width, h - 2 * width), interpolation=cv2.INTER_AREA)
    return cv2.copyMakeBorder(thumb, width, width, width, width, cv2.BORDER_CONSTANT, value=border)


def _put_text(canvas: np.ndarray, text: str, x: int, y: int, scale: float, color=(20, 20, 20)) -> None:
    cv2.putText(canvas, text, (x, y), cv2.FONT_HERSHEY_SIMPLEX, scale, color, 1, cv2.LINE_AA)


# The one table of what each colour means, used by the PNGs, the demo's HTML page and the verification figure.
ROLE_COLOURS = {"match": GREEN, "negative": RED, "ignored": AMBER, "unknown": GREY}
QUERY_COLOUR = BLUE  # the query's border


def css_colour(rgb: Tuple[int, int, int]) -> str:
    """An RGB triple as HTML and matplotlib write it (#rrggbb)."""
    return "#{:02x}{:02x}{:02x}".format(*rgb)


def distance_decimals(values: Sequence[float], least: int = 4, most: int = 10) -> int:
    """Decimals that keep distinct distances distinct when printed (neighbours must not read as ties)."""
    distinct = np.unique(np.asarray([v for v in values if np.isfinite(v)], dtype=np.float64))
    for decimals in range(least, most + 1):
        if len({f"{v:.{decimals}f}" for v in distinct}) == len(distinct):
            return decimals
    return most


def _ascii(text: str) -> str:
    # OpenCV's Hershey fonts draw ASCII only: anything else would come out as garbage glyphs
    return text.encode("ascii", "replace").decode("ascii")


def _wrap(text: str, width_px: int, scale: float) -> list:
    per_line = max(8, int(width_px / (19 * scale)))  # Hershey simplex glyphs are ~19 px wide at scale 1
    text = _ascii(text)
    return [text[i:i + per_line] for i in range(0, len(text), per_line)] or [""]


def draw_ranklist(
    query: ImageLike,
    gallery: Sequence[ImageLike],
    distances: Sequence[float],
    matches: Optional[Sequence[Optional[bool]]] = None,
    labels: Optional[Sequence[str]] = None,
    query_label: str = "query",
    thumb_size: Tuple[int, int] = (128, 64),
    roles: Optional[Sequence[str]] = None,
    decimals: int = 4,
    title: Optional[str] = None,
) -> np.ndarray:
    """Draw one row: the query (blue border), a gap, then the ranked gallery thumbnails.

    Under each gallery thumbnail: its rank and distance (`decimals` places) and `labels[i]` (e.g. "id 12 c3").
    Borders: `roles[i]` in match / negative / ignored (junk or same camera, left out by the protocol) / unknown,
    or, without roles, `matches[i]` True/False/None as match / negative / unknown. `title` (e.g. the full query
    name) is written above the row, wrapped to its width. Returns an RGB uint8 image.
    """
    if len(gallery) != len(distances):
        raise ValueError(f"draw_ranklist: {len(gallery)} gallery images but {len(distances)} distances")
    for name, flags in (("match flags", matches), ("roles", roles)):
        if flags is not None and len(flags) != len(gallery):
            raise ValueError(f"draw_ranklist: {len(gallery)} gallery images but {len(flags)} {name}")
    if roles is None:
        roles = ["unknown" if m is None else ("match" if m else "negative") for m in (matches or [None] * len(gallery))]
    unknown = [r for r in roles if r not in ROLE_COLOURS]
    if unknown:
        raise ValueError(f"draw_ranklist: role {unknown[0]!r} is not one of {', '.join(ROLE_COLOURS)}")
    th, tw = thumb_size
    text_band = 48 if labels is not None else 34
    gap, pad = 16, 6
    n = len(gallery)
    width = pad + tw + gap + n * (tw + pad)
    scale = 0.36 * tw / 64
    title_lines = _wrap(title, width - 2 * pad, scale) if title else []
    top = pad + 14 * len(title_lines)
    canvas = np.full((top + th + text_band, width, 3), 255, np.uint8)
    for i, line in enumerate(title_lines):
        _put_text(canvas, line, pad, pad + 10 + 14 * i, scale)

    canvas[top:top + th, pad:pad + tw] = _thumbnail(_load_rgb(query), thumb_size, QUERY_COLOUR, 4)
    _put_text(canvas, _ascii(query_label)[:12], pad, top + th + 15, scale)
    x = pad + tw + gap
    for i in range(n):
        canvas[top:top + th, x:x + tw] = _thumbnail(_load_rgb(gallery[i]), thumb_size, ROLE_COLOURS[roles[i]], 4)
        _put_text(canvas, f"#{i + 1}", x, top + th + 15, scale)
        _put_text(canvas, f"{distances[i]:.{decimals}f}", x, top + th + 29, scale)
        if labels is not None:
            _put_text(canvas, _ascii(labels[i])[:14], x, top + th + 43, scale, (70, 70, 70))
        x += tw + pad
    return canvas


def save_image(image: np.ndarray, path: Union[str, Path]) -> Path:
    """Write an RGB image (PNG by extension) atomically."""
    path = Path(path)
    with atomic_path(path, keep_extension=True) as tmp:  # OpenCV picks the format by the extension
        if not cv2.imwrite(str(tmp), cv2.cvtColor(image, cv2.COLOR_RGB2BGR)):
            raise OSError(f"cannot write image {path}")
    return path


def plot_verification(positives: np.ndarray, negatives: np.ndarray, far: Sequence[float], tar: Sequence[float],
                      threshold: float, path: Union[str, Path], metric: str = "squared Euclidean distance",
                      chosen_far: float = 1e-3) -> Path:
    """Same-id vs different-id distance histograms (with the threshold) and the ROC, side by side, as a PNG.

    matplotlib draws it when installed; otherwise OpenCV does (it is always installed), so the file always exists.
    """
    path = Path(path)
    pos, neg = np.asarray(positives, np.float64), np.asarray(negatives, np.float64)
    lo, hi = float(min(pos.min(), neg.min())), float(max(pos.max(), neg.max()))
    bins = np.linspace(lo, hi if hi > lo else lo + 1, 61)
    hp, hn = np.histogram(pos, bins, density=True)[0], np.histogram(neg, bins, density=True)[0]
    far_arr, tar_arr = np.clip(np.asarray(far, np.float64), 1e-6, 1), np.asarray(tar, np.float64)
    matplotlib = optional_module("matplotlib")
    if matplotlib is not None:
        matplotlib.use("Agg")  # files only, no display: chosen before pyplot is first imported
    plt = None if matplotlib is None else optional_module("matplotlib.pyplot")
    if plt is None:
        return save_image(_plot_verification_cv2(bins, hp, hn, far_arr, tar_arr, threshold, metric, chosen_far),
                          path)
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(11, 4.2))
    same, other = css_colour(ROLE_COLOURS["match"]), css_colour(ROLE_COLOURS["negative"])  # as in the rank lists
    ax1.stairs(hp, bins, label=f"same id ({len(pos)} pairs)", color=same, fill=True, alpha=0.4)
    ax1.stairs(hn, bins, label=f"different id ({len(neg)} pairs)", color=other, fill=True, alpha=0.4)
    if np.isfinite(threshold):
        ax1.axvline(threshold, color="black", ls="--", label=f"threshold {threshold:.4g} (FAR {chosen_far:g})")
    ax1.set_xlabel(metric)
    ax1.set_ylabel("density")
    ax1.legend(fontsize=8)
    ax2.semilogx(far_arr, tar_arr, color=css_colour(BLUE))
    ax2.set_xlabel("FAR (false accept rate)")
    ax2.set_ylabel("TAR (true accept rate)")
    ax2.set_ylim(0, 1.01)
    ax2.grid(True, which="both", alpha=0.3)
    fig.tight_layout()
    try:
        with atomic_path(path, keep_extension=True) as tmp:
            fig.savefig(tmp, dpi=100)
    finally:
        plt.close(fig)
    return path


def _ticks(lo: float, hi: float, count: int = 5) -> np.ndarray:
    """Round tick values covering [lo, hi] (steps of 1, 2 or 5 times a power of ten), as a plotting library picks."""
    span = (hi - lo) or 1.0
    raw = span / max(1, count - 1)
    power = 10 ** np.floor(np.log10(raw))
    step = next(f * power for f in (1, 2, 5, 10) if f * power >= raw)
    first = np.ceil(lo / step) * step
    return np.arange(first, hi + step * 1e-9, step)


def _plot_verification_cv2(bins, hp, hn, far, tar, threshold, metric, chosen_far) -> np.ndarray:
    """The figure without matplotlib: both panels with tick values, the threshold drawn inside the plot area
    (a threshold at the range's edge would otherwise vanish into the axis) and labelled."""
    h, w, left, m = 440, 1100, 64, 40
    canvas = np.full((h, w, 3), 255, np.uint8)
    pw, ph = w // 2 - left - m // 2, h - 2 * m - 20  # each panel's plot area
    black, grid = (20, 20, 20), (225, 225, 225)
    lo, hi = float(bins[0]), float(bins[-1])

    def frame(x0: int, xlabel: str, ylabel: str) -> None:
        cv2.rectangle(canvas, (x0, m), (x0 + pw, m + ph), black, 1)
        _put_text(canvas, xlabel, x0 + pw // 2 - 4 * len(xlabel), m + ph + 38, 0.45)
        _put_text(canvas, ylabel, x0, m - 12, 0.45)

    def y_ticks(x0: int, values: Sequence[float], top: float, fmt: str) -> None:
        for v in values:
            y = m + ph - int(ph * v / top)
            cv2.line(canvas, (x0 + 1, y), (x0 + pw - 1, y), grid, 1)
            cv2.line(canvas, (x0 - 4, y), (x0, y), black, 1)
            _put_text(canvas, format(v, fmt), x0 - left + 6, y + 4, 0.38)

    x0 = left
    frame(x0, metric, "density: green same id, red different id")
    top = max(hp.max(), hn.max(), 1e-12) * 1.05
    y_ticks(x0, [v for v in _ticks(0, top, 4) if v <= top], top, ".3g")
    for v in _ticks(lo, hi, 6):
        if lo <= v <= hi:
            x = x0 + int(pw * (v - lo) / (hi - lo))
            cv2.line(canvas, (x, m + ph), (x, m + ph + 4), black, 1)
            _put_text(canvas, f"{v:.3g}", x - 12, m + ph + 18, 0.38)
    for hist, colour in ((hp, ROLE_COLOURS["match"]), (hn, ROLE_COLOURS["negative"])):
        pts = [(x0 + int(pw * (i + 0.5) / len(hist)), m + ph - int(ph * v / top)) for i, v in enumerate(hist)]
        cv2.polylines(canvas, [np.array(pts, np.int32)], False, colour, 2, cv2.LINE_AA)
    if np.isfinite(threshold):
        tx = x0 + int(pw * (min(max(threshold, lo), hi) - lo) / (hi - lo))
        tx = min(max(tx, x0 + 3), x0 + pw - 3)  # inside the frame, never on it
        for y in range(m + 2, m + ph, 8):  # dashed, as matplotlib's "--"
            cv2.line(canvas, (tx, y), (tx, min(y + 4, m + ph - 1)), black, 2)
        side = "" if lo <= threshold <= hi else (" (below the range)" if threshold < lo else " (above the range)")
        text = f"threshold {threshold:.4g} (FAR {chosen_far:g}){side}"
        tx_text = tx + 6 if tx + 6 + 7 * len(text) < x0 + pw else tx - 6 - 7 * len(text)
        _put_text(canvas, text, max(x0 + 4, tx_text), m + 16, 0.42)
    x1 = w // 2 + left - m // 2
    frame(x1, "FAR (false accept rate, log scale)", "TAR (true accept rate)")
    y_ticks(x1, [0.0, 0.25, 0.5, 0.75, 1.0], 1.0, ".2f")
    for e in range(-6, 1):
        gx = x1 + int(pw * (e + 6) / 6)
        cv2.line(canvas, (gx, m + 1), (gx, m + ph - 1), grid, 1)
        cv2.line(canvas, (gx, m + ph), (gx, m + ph + 4), black, 1)
        _put_text(canvas, f"1e{e}", gx - 12, m + ph + 18, 0.38)
    pts = [(x1 + int(pw * (np.log10(f) + 6) / 6), m + ph - int(ph * t)) for f, t in zip(far, tar)]
    cv2.polylines(canvas, [np.array(pts, np.int32)], False, BLUE, 2, cv2.LINE_AA)
    return canvas
