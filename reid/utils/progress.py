"""Progress reporting that behaves in both a terminal and a log file.

On an interactive terminal (stderr is a TTY) a tqdm bar is drawn. When stderr is redirected (a log file, CI, a job
scheduler) a bar would write every refresh, carriage returns included, into the file; there a plain line with the
count, the rate and an ETA is written every `interval` seconds instead, and a closing line only when the loop was
long enough to have printed one (short loops such as a small evaluation stay silent).

    for batch in progress(loader, "gallery", enabled=not args.no_progress):
        ...

    bar = progress(loader, "epoch 3/60", log=monitor.log)   # plain lines also reach train.log
    for batch in bar:
        bar.set_postfix(loss=f"{loss:.4f}")                  # shown on the bar, or appended to the plain line
"""
from __future__ import annotations

import sys
import time
from typing import Any, Callable, Iterable, Iterator, Optional, TextIO, TypeVar

T = TypeVar("T")

DEFAULT_INTERVAL = 30.0  # seconds between plain log lines: a 10-hour run writes ~1200 lines, not millions


def is_interactive(stream: Optional[TextIO] = None) -> bool:
    """True when `stream` (default: the current sys.stderr) is a terminal."""
    stream = sys.stderr if stream is None else stream
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError):  # closed or replaced streams
        return False


def format_seconds(seconds: float) -> str:
    """`75` -> `1:15`, `4000` -> `1:06:40` (the tqdm convention, so both modes read alike)."""
    seconds = max(0, int(round(seconds)))
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes}:{secs:02d}"


class Progress(Iterator[T]):
    """Iterates over `iterable`, reporting as described in the module docstring; see `progress()`."""

    def __init__(self, iterable: Iterable[T], desc: str, enabled: bool = True, total: Optional[int] = None,
                 interval: float = DEFAULT_INTERVAL, log: Optional[Callable[[str], None]] = None,
                 stream: Optional[TextIO] = None, clock: Callable[[], float] = time.monotonic) -> None:
        if total is None:
            try:
                total = len(iterable)  # type: ignore[arg-type]
            except TypeError:  # generators have no length: the lines then carry no percentage or ETA
                total = None
        self.desc, self.total, self.interval = desc, total, float(interval)
        self.count = 0
        self.postfix = ""
        self._clock = clock
        self._stream = sys.stderr if stream is None else stream
        self._log = log
        self._bar = None
        self._lines = 0
        self._done = False
        if enabled and is_interactive(self._stream):
            from tqdm import tqdm

            self._bar = tqdm(iterable, desc=desc, total=total, leave=False, file=self._stream)
            self._iter: Iterator[T] = iter(self._bar)
        else:
            self._iter = iter(iterable)
        self._plain = enabled and self._bar is None
        self._start = clock()
        self._last = self._start

    def __iter__(self) -> "Progress[T]":
        return self

    def __next__(self) -> T:
        try:
            item = next(self._iter)
        except StopIteration:
            self.close()
            raise
        self.count += 1
        if self._plain:
            now = self._clock()
            if now - self._last >= self.interval:
                self._last = now
                self._emit(self.line(now))
        return item

    def __len__(self) -> int:
        if self.total is None:
            raise TypeError(f"progress '{self.desc}' has no known length")
        return self.total

    def set_postfix(self, **values: Any) -> None:
        """Values such as the current loss: shown on the bar, or appended to the next plain line."""
        if self._bar is not None:
            self._bar.set_postfix(**values)
        self.postfix = ", ".join(f"{k} {v}" for k, v in values.items())

    def line(self, now: Optional[float] = None) -> str:
        """The plain progress line at time `now`: count, percentage, elapsed, rate and ETA when the total is known."""
        now = self._clock() if now is None else now
        elapsed = max(now - self._start, 1e-9)
        rate = self.count / elapsed
        parts = [f"{self.desc}: {self.count}" + (f"/{self.total}" if self.total else "")]
        if self.total:
            parts.append(f"{100.0 * self.count / self.total:.0f}%")
        parts.append(f"{format_seconds(elapsed)} elapsed")
        parts.append(f"{rate:.2f} it/s" if rate >= 1 or rate == 0 else f"{1 / rate:.1f} s/it")
        if self.total and self.count and self.count < self.total:
            parts.append(f"ETA {format_seconds((self.total - self.count) / rate)}")
        if self.postfix:
            parts.append(self.postfix)
        return ", ".join(parts)

    def _emit(self, text: str) -> None:
        self._lines += 1
        if self._log is not None:
            self._log(text)
        else:
            print(text, file=self._stream, flush=True)

    def close(self) -> None:
        """End the bar; in plain mode a closing line follows only if progress lines were written."""
        if self._done:
            return
        self._done = True
        if self._bar is not None:
            self._bar.close()
        elif self._plain and self._lines:
            self._emit(f"{self.desc}: {self.count} done in {format_seconds(self._clock() - self._start)}"
                       + (f", {self.postfix}" if self.postfix else ""))


def progress(iterable: Iterable[T], desc: str, enabled: bool = True, total: Optional[int] = None,
             interval: float = DEFAULT_INTERVAL, log: Optional[Callable[[str], None]] = None,
             stream: Optional[TextIO] = None) -> Progress[T]:
    """Wrap `iterable` with a bar on a terminal, periodic plain lines with an ETA otherwise, nothing if disabled.

    `enabled=False` (`--no-progress`, or non-zero distributed ranks) reports nothing at all. `log` receives the
    plain lines instead of `stream` (default sys.stderr), e.g. `Monitor.log` so they also land in train.log.
    """
    return Progress(iterable, desc, enabled=enabled, total=total, interval=interval, log=log, stream=stream)
