"""Issue 29 items 5, 6 and 8 for the demo: a page whose folder can be moved, the query itself (or a copy of it)
left out of the ranking for any file names, captions and notes that say what the strip shows."""
from __future__ import annotations

import re
import shutil
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import unquote

import cv2
import pytest

from reid.demo import run_demo


class _Sources(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.images, self.links = [], []

    def handle_starttag(self, tag, attrs):
        values = dict(attrs)
        if tag == "img":
            self.images.append(unquote(values["src"]))
        elif tag == "a":
            self.links.append(unquote(values["href"]))


def _page(out: Path) -> _Sources:
    parser = _Sources()
    parser.feed((out / "index.html").read_text(encoding="utf-8"))
    return parser


@pytest.fixture()
def plain_gallery(tiny_market, tmp_path):
    """Crops under names without ids (a user's own folder), one of them a byte copy of the query."""
    files = sorted(p for p in (Path(tiny_market) / "bounding_box_test").glob("*.jpg")
                   if not p.name.startswith(("0000", "-1")))[:12]
    root = tmp_path / "crops"
    root.mkdir()
    for i, path in enumerate(files):
        shutil.copy2(path, root / f"person_{i:02d}.jpg")
    shutil.copy2(root / "person_04.jpg", root / "copy_of_four.jpg")
    return root


def test_moved_demo_folder_renders_every_thumbnail(tiny_checkpoint, plain_gallery, tmp_path):
    out = tmp_path / "out"
    run_demo(str(tiny_checkpoint), str(plain_gallery), [str(plain_gallery / "person_04.jpg")], str(out), topk=5,
             device="cpu", progress=False)
    moved = tmp_path / "elsewhere" / "shared_demo"
    moved.parent.mkdir()
    shutil.move(str(out), str(moved))
    shutil.rmtree(plain_gallery)  # the gallery is gone too (a colleague's machine): the thumbnails still load
    page = _page(moved)
    shown = [src for src in page.images if not src.endswith(".png")]
    assert len(shown) == 6  # the query and five results
    for src in shown:
        target = (moved / src).resolve()
        assert target.is_relative_to(moved.resolve()) and target.is_file(), src
        image = cv2.imread(str(target))
        assert image is not None and image.shape[0] <= 256 and image.std() > 5
    # full images stay links to the originals (not copied)
    assert any(link.endswith("person_04.jpg") and not (moved / link).resolve().is_relative_to(moved.resolve())
               for link in page.links)


def test_rerun_keeps_only_the_thumbnails_the_page_shows(tiny_checkpoint, plain_gallery, tmp_path):
    out = tmp_path / "out"
    run_demo(str(tiny_checkpoint), str(plain_gallery), [str(plain_gallery / "person_04.jpg")], str(out), topk=5,
             device="cpu", progress=False)
    run_demo(str(tiny_checkpoint), str(plain_gallery), [str(plain_gallery / "person_07.jpg")], str(out), topk=2,
             device="cpu", progress=False)
    shown = {src for src in _page(out).images if src.startswith("thumbs/")}
    # the query is its own first result: one thumbnail for both
    assert {f"thumbs/{p.name}" for p in (out / "thumbs").iterdir()} == shown and len(shown) == 2


def test_query_and_its_copy_are_marked_and_left_out_without_ids_in_names(tiny_checkpoint, plain_gallery, tmp_path,
                                                                        capsys):
    query = plain_gallery / "person_04.jpg"
    run_demo(str(tiny_checkpoint), str(plain_gallery), [str(query)], str(tmp_path / "out"), topk=4, device="cpu",
             progress=False)
    table = capsys.readouterr().out.split("rank  distance")[1].splitlines()[1:5]
    marked = [line for line in table if "ignored" in line]
    assert {line.split()[-1] for line in marked} == {"person_04.jpg", "copy_of_four.jpg"}, table
    html = (tmp_path / "out" / "index.html").read_text()
    assert "the query itself (ignored)" in html
    assert re.search(r"left out of the ranking as the query itself \(the same file or a copy\): "
                     r"(copy_of_four\.jpg, person_04\.jpg|person_04\.jpg, copy_of_four\.jpg)", html)


def test_note_gives_the_strip_position_and_the_protocol_rank(tiny_checkpoint, tiny_market, tmp_path):
    gallery = tmp_path / "gallery"
    shutil.copytree(Path(tiny_market) / "bounding_box_test", gallery)
    query = sorted(Path(tiny_market, "query").glob("*.jpg"))[0]
    shutil.copy2(query, gallery / query.name)  # the query itself is in the gallery: an ignored item first
    # the whole gallery shown (the tiny model ranks the match far down): the strip holds the first true match
    run_demo(str(tiny_checkpoint), str(gallery), [str(gallery / query.name)], str(tmp_path / "out"), topk=200,
             device="cpu", progress=False)
    html = (tmp_path / "out" / "index.html").read_text()
    match = re.search(r"first true match: #(\d+) below \(protocol rank (\d+): the ignored items before it are "
                      r"not counted\)", html)
    assert match, html[:3000]
    position, rank = int(match.group(1)), int(match.group(2))
    assert position > rank >= 1  # the query itself (and any same-camera item) comes before it in the strip
    captions = re.findall(r"</a>#(\d+) ", html)
    assert str(position) in captions


def test_threshold_caption_keeps_same_in_one_piece(tiny_checkpoint, plain_gallery, tmp_path):
    run_demo(str(tiny_checkpoint), str(plain_gallery), [str(plain_gallery / "person_04.jpg")], str(tmp_path / "o"),
             topk=3, device="cpu", threshold="10", progress=False)
    html = (tmp_path / "o" / "index.html").read_text()
    thumb_rule = re.search(r"\.thumb\{[^}]*\}", html).group(0)
    assert "<b>same</b>" in html and "break-all" not in thumb_rule and ".thumb b{white-space:nowrap}" in html
