"""Progress output (reid.utils.progress): ETA lines, not bars, when the stream is not a terminal; short loops and
disabled progress are silent."""
from __future__ import annotations

import io

from reid.utils.progress import Progress, progress


class _Stream(io.StringIO):
    def __init__(self, tty: bool) -> None:
        super().__init__()
        self.tty = tty

    def isatty(self) -> bool:
        return self.tty


def test_progress_writes_eta_lines_not_bars_when_redirected():
    ticks = iter(range(0, 1000, 10))  # every clock reading is 10 s later (start, 10 items, the end)
    stream = _Stream(tty=False)
    bar = Progress(range(10), "gallery", stream=stream, interval=30, clock=lambda: float(next(ticks)))
    for i in bar:
        bar.set_postfix(loss=f"{i:.1f}")
    lines = stream.getvalue().splitlines()
    assert "\r" not in stream.getvalue()
    assert lines[0].startswith("gallery: 3/10, 30%") and "ETA 1:10" in lines[0], lines
    assert len(lines) == 4 and lines[-1].startswith("gallery: 10 done in 1:50"), lines


def test_progress_short_loops_are_silent_bars_only_on_a_terminal_disabled_is_silent():
    quiet = _Stream(tty=False)
    assert list(progress(range(5), "query", stream=quiet)) == list(range(5))
    assert quiet.getvalue() == ""  # under one interval: no line at all
    tty = _Stream(tty=True)
    assert list(progress(range(5), "query", stream=tty)) == list(range(5))
    assert "\r" in tty.getvalue() and "query" in tty.getvalue()
    off = _Stream(tty=True)
    assert list(progress(range(5), "query", enabled=False, stream=off)) == list(range(5))
    assert off.getvalue() == ""
