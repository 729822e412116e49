"""The demo's index.html: a summary header, then per query its full name, thumbnails of the ranked gallery (copies
in the output folder's thumbs/, so the folder can be moved or shared; each a link to the full image), the
rank-list PNG and a table. Every text is HTML-escaped and every link URL-encoded
(file names may hold '#', '%', '?' or spaces, which a raw href would cut or misread)."""
from __future__ import annotations

import html
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import List, Optional, Sequence, Tuple, Union
from urllib.parse import quote

from ..utils import atomic_write
from ..visualize import QUERY_COLOUR, ROLE_COLOURS, css_colour

ROLE_CSS = {role: css_colour(rgb) for role, rgb in ROLE_COLOURS.items()}  # the PNGs' border colours


@dataclass
class PageRow:
    rank: int
    label: str  # what to show, e.g. the path relative to the gallery folder
    target: str  # the file, as a path relative to the page
    distance: float
    ids: str  # "12 / c3" or "-"
    role: str  # match | negative | ignored | unknown
    role_text: str
    below_threshold: Optional[bool] = None
    thumb: str = ""  # the copied thumbnail, relative to the page ("" = show the image itself)


@dataclass
class PageEntry:
    name: str  # the query's full name
    target: str  # the query image, relative to the page
    ranklist: str  # the rank-list PNG, relative to the page
    ids: str
    rows: List[PageRow] = field(default_factory=list)
    note: str = ""  # e.g. "true match within top-10 (protocol)"
    thumb: str = ""


def href(relative_path: str) -> str:
    """A relative file path as an href: URL-encoded ('#' -> %23, '%' -> %25), separators kept, then escaped."""
    return html.escape(quote(relative_path.replace(os.sep, "/"), safe="/"), quote=True)


def _escape(text: str) -> str:
    return html.escape(str(text), quote=True)


def write_demo_page(path: Union[str, Path], title: str, summary: Sequence[Tuple[str, str]], metric: str,
                    decimals: int, entries: Sequence[PageEntry], threshold: Optional[float] = None) -> Path:
    """Write the page atomically (a crash never leaves half a page)."""
    path = Path(path)
    legend = " ".join(f"<span class='chip' style='border-color:{c}'>{_escape(r)}</span>" for r, c in ROLE_CSS.items())
    parts = [
        "<!doctype html><html><head><meta charset='utf-8'>",
        f"<title>{_escape(title)}</title><style>",
        "body{font-family:sans-serif;margin:20px;color:#222} h2{font-size:15px;word-break:break-all}",
        "table{border-collapse:collapse;font-size:13px;margin:6px 0 24px} td,th{padding:2px 8px;"
        "border-bottom:1px solid #ddd;text-align:left} td.num{font-family:monospace;text-align:right}",
        ".strip{display:flex;gap:6px;flex-wrap:wrap;align-items:flex-start}",
        # words wrap whole ("same" never splits into "s / ame"); only an unbreakable one is cut
        ".thumb{text-align:center;font-size:11px;width:72px;overflow-wrap:anywhere} .thumb b{white-space:nowrap}",
        ".thumb img{height:128px;width:64px;object-fit:cover;border:4px solid #999;display:block}",
        ".query img{border-color:" + css_colour(QUERY_COLOUR) + "} .chip{border:3px solid;padding:0 4px;"
        "margin-right:4px;font-size:12px}",
        ".summary td:first-child{font-weight:bold} .ranklist{max-width:100%;margin-top:6px}",
        "</style></head><body>",
        f"<h1>{_escape(title)}</h1><table class='summary'>",
    ]
    parts += [f"<tr><td>{_escape(k)}</td><td>{_escape(v)}</td></tr>" for k, v in summary]
    parts.append(f"</table><p>Border colours: {legend} (ignored: junk or same id and camera, left out of the ranking by "
                 f"the evaluation protocol). Distances: {_escape(metric)}"
                 + (f"; <b>same person</b> when below the threshold {threshold:.{decimals}f}" if threshold is not None
                    else "") + ".</p>")
    for e in entries:
        parts.append(f"<h2>query: {_escape(e.name)}</h2><p>{_escape(e.ids)} {_escape(e.note)}</p><div class='strip'>")
        # thumbnails are the page's own copies (the folder stays whole when moved); the links open the originals
        parts.append(f"<div class='thumb query'><a href='{href(e.target)}'><img src='{href(e.thumb or e.target)}' "
                     f"alt='query'></a>query</div>")
        for r in e.rows:
            mark = " <b>same</b>" if r.below_threshold else ""
            parts.append(f"<div class='thumb'><a href='{href(r.target)}' title='{_escape(r.label)}'>"
                         f"<img src='{href(r.thumb or r.target)}' loading='lazy' alt='rank {r.rank}' "
                         f"style='border-color:{ROLE_CSS[r.role]}'></a>#{r.rank} {r.distance:.{decimals}f}{mark}"
                         f"</div>")
        # The strip above already shows the rank list: the PNG (for sharing) is linked, not shown a second time.
        parts.append(f"</div><p><a href='{href(e.ranklist)}'>rank list as one image (PNG)</a></p>")
        parts.append("<table><tr><th>rank</th><th>image</th><th>distance</th><th>id / camera</th><th>protocol</th>"
                     + ("<th>threshold</th>" if threshold is not None else "") + "</tr>")
        for r in e.rows:
            cell = "" if threshold is None else f"<td>{'same person' if r.below_threshold else 'different'}</td>"
            parts.append(f"<tr><td>{r.rank}</td><td><a href='{href(r.target)}'>{_escape(r.label)}</a></td>"
                         f"<td class='num'>{r.distance:.{decimals}f}</td><td>{_escape(r.ids)}</td>"
                         f"<td style='color:{ROLE_CSS[r.role]}'>{_escape(r.role_text)}</td>{cell}</tr>")
        parts.append("</table>")
    parts.append("</body></html>")
    with atomic_write(path) as handle:
        handle.write("\n".join(parts))
    return path
