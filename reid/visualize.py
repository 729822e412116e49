"""Rank-list images: a query and its top-k gallery matches with distances, shared by test.py, the demo and
TensorBoard. Correct / wrong matches get green / red borders when identities are known."""
from __future__ import annotations

import html
import os
from pathlib import Path
from typing import Optional, Sequence, Tuple, Union

import cv2
import numpy as np

ImageLike = Union[str, Path, np.ndarray]

GREEN = (40, 170, 40)
RED = (220, 40, 40)
GREY = (150, 150, 150)
BLUE = (40, 90, 220)


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


def draw_ranklist(
    query: ImageLike,
    gallery: Sequence[ImageLike],
    distances: Sequence[float],
    matches: Optional[Sequence[Optional[bool]]] = None,
    labels: Optional[Sequence[str]] = None,
    query_label: str = "query",
    thumb_size: Tuple[int, int] = (128, 64),
) -> np.ndarray:
    """Draw one row: the query (blue border), a gap, then the ranked gallery thumbnails.

    Under each gallery thumbnail: its rank and distance (and `labels[i]`, e.g. "id 12 c3", when given).
    `matches[i]` True/False gives a green/red border; None (unknown identity) grey. Returns an RGB uint8 image.
    """
    if len(gallery) != len(distances):
        raise ValueError(f"draw_ranklist: {len(gallery)} gallery images but {len(distances)} distances")
    if matches is not None and len(matches) != len(gallery):
        raise ValueError(f"draw_ranklist: {len(gallery)} gallery images but {len(matches)} match flags")
    th, tw = thumb_size
    text_band = 34 if labels is not None else 22
    gap, pad = 16, 6
    n = len(gallery)
    width = pad + tw + gap + n * (tw + pad)
    height = pad + th + text_band
    canvas = np.full((height, width, 3), 255, np.uint8)
    scale = 0.36 * tw / 64

    canvas[pad:pad + th, pad:pad + tw] = _thumbnail(_load_rgb(query), thumb_size, BLUE, 4)
    _put_text(canvas, query_label[:12], pad, pad + th + 15, scale)
    x = pad + tw + gap
    for i in range(n):
        flag = None if matches is None else matches[i]
        colour = GREY if flag is None else (GREEN if flag else RED)
        canvas[pad:pad + th, x:x + tw] = _thumbnail(_load_rgb(gallery[i]), thumb_size, colour, 4)
        _put_text(canvas, f"#{i + 1} {distances[i]:.3f}", x, pad + th + 15, scale)
        if labels is not None:
            _put_text(canvas, labels[i][:14], x, pad + th + 29, scale, (70, 70, 70))
        x += tw + pad
    return canvas


def save_image(image: np.ndarray, path: Union[str, Path]) -> Path:
    """Write an RGB image (PNG by extension) atomically."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.stem}.tmp{os.getpid()}{path.suffix}")
    if not cv2.imwrite(str(tmp), cv2.cvtColor(image, cv2.COLOR_RGB2BGR)):
        raise OSError(f"cannot write image {path}")
    os.replace(tmp, path)
    return path


def write_html_report(
    entries: Sequence[Tuple[str, str, Sequence[Tuple[int, str, float, str]]]], path: Union[str, Path], title: str
) -> Path:
    """One HTML page listing every query.

    Each entry: (query name, rank-list PNG path relative to the page, rows of (rank, image path, distance, id/camera)).
    """
    path = Path(path)
    parts = [f"<!doctype html><html><head><meta charset='utf-8'><title>{html.escape(title)}</title>",
             "<style>body{font-family:sans-serif;margin:20px} img{max-width:100%;image-rendering:pixelated}"
             " table{border-collapse:collapse;font-size:13px} td,th{padding:2px 8px;border-bottom:1px solid #ddd}"
             "</style></head><body>", f"<h1>{html.escape(title)}</h1>"]
    for name, image, rows in entries:
        parts.append(f"<h2>{html.escape(name)}</h2><img src='{html.escape(image)}' alt='rank list for "
                     f"{html.escape(name)}'><table><tr><th>rank</th><th>image</th><th>distance</th><th>id / camera</th></tr>")
        for rank, image_path, distance, idcam in rows:
            parts.append(f"<tr><td>{rank}</td><td>{html.escape(str(image_path))}</td><td>{distance:.4f}</td>"
                         f"<td>{html.escape(idcam)}</td></tr>")
        parts.append("</table>")
    parts.append("</body></html>")
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    tmp.write_text("\n".join(parts), encoding="utf-8")
    os.replace(tmp, path)
    return path
