"""One table of role colours: the rank-list PNGs' borders, the demo page's borders and legend, and the
verification figure's same-id / different-id curves use the same colour for the same meaning."""
from __future__ import annotations

import numpy as np

from reid import visualize
from reid.demo import page


def test_the_page_colours_are_the_png_colours(tmp_path):
    # the values the page wrote before it read them from reid.visualize
    assert page.ROLE_CSS == {"match": "#28aa28", "negative": "#dc2828", "ignored": "#eba014", "unknown": "#969696"}
    assert list(page.ROLE_CSS) == list(visualize.ROLE_COLOURS)  # the legend's order
    assert visualize.css_colour(visualize.QUERY_COLOUR) == "#285adc"
    entry = page.PageEntry("q.jpg", "q.jpg", "r.png", "id unknown",
                           [page.PageRow(1, "g.jpg", "g.jpg", 0.5, "-", "negative", "different id")])
    html = page.write_demo_page(tmp_path / "index.html", "t", [], "metric", 2, [entry]).read_text()
    assert ".query img{border-color:#285adc} .chip{border:3px solid;" in html
    assert "style='border-color:#dc2828'" in html and "color:#dc2828" in html


def test_a_png_border_has_its_role_colour():
    image = np.full((64, 32, 3), 255, np.uint8)
    drawn = visualize.draw_ranklist(image, [image, image], [0.1, 0.2], roles=["match", "ignored"])
    pad, th, tw, gap = 6, 128, 64, 16  # draw_ranklist's layout (thumb_size 128 x 64)
    assert tuple(drawn[pad + 1, pad + 1]) == visualize.QUERY_COLOUR
    x = pad + tw + gap
    assert tuple(drawn[pad + 1, x + 1]) == visualize.ROLE_COLOURS["match"]
    assert tuple(drawn[pad + 1, x + tw + pad + 1]) == visualize.ROLE_COLOURS["ignored"]
    assert drawn.shape[0] > th
