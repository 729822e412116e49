"""Issue 29 item 9: verification.png is readable with and without matplotlib: the OpenCV fallback has tick values
and keeps the threshold visible even at the edge of the distance range."""
from __future__ import annotations

import sys

import numpy as np
import pytest

from reid import visualize


def test_ticks_are_round_values_covering_the_range():
    np.testing.assert_allclose(visualize._ticks(0.23, 3.2, 6), [1.0, 2.0, 3.0])  # step 0.59 -> 1
    np.testing.assert_allclose(visualize._ticks(0.23, 3.2, 8), [0.5, 1.0, 1.5, 2.0, 2.5, 3.0])
    np.testing.assert_allclose(visualize._ticks(0, 2.1, 4), [0.0, 1.0, 2.0])
    np.testing.assert_allclose(visualize._ticks(0, 0.0042, 4), [0.0, 0.002, 0.004])


def _figure(threshold):
    bins = np.linspace(0.0, 4.0, 61)
    hp = np.exp(-((bins[:-1] - 1) ** 2) * 8)
    hn = np.exp(-((bins[:-1] - 2.5) ** 2) * 4)
    far = np.logspace(-6, 0, 50)
    return visualize._plot_verification_cv2(bins, hp, hn, far, far ** 0.2, threshold, "distance", 1e-3)


@pytest.mark.parametrize("threshold", [0.0, -1.0])
def test_threshold_at_or_below_the_range_stays_visible_inside_the_frame(threshold):
    image = _figure(threshold)
    left, top = 64, 40
    column = image[top + 5:top + 300, left + 3]  # just inside the left edge of the histogram panel
    dark = (column.max(axis=1) < 80).mean()
    assert 0.3 < dark < 0.9  # a dashed line, not the solid frame and not nothing
    blank = _figure(float("nan"))[top + 5:top + 300, left + 3]
    assert (blank.max(axis=1) < 80).mean() < 0.05


def test_fallback_draws_tick_labels_under_both_panels():
    image = _figure(1.2)
    below = image[40 + 340 + 6:40 + 340 + 20]  # the tick-label band under the plot areas (340 px high)
    inked = (below.min(axis=2) < 128).any(axis=0)
    assert inked[:550].sum() > 20 and inked[550:].sum() > 20  # values on both x axes


def test_matplotlib_is_used_when_present_and_in_the_plot_extra(tmp_path, monkeypatch):
    pytest.importorskip("matplotlib")  # the plot extra installs it (tests/test_packaging.py reads the wheel)
    calls = []
    monkeypatch.setattr(visualize, "_plot_verification_cv2", lambda *a: calls.append(a))
    rng = np.random.default_rng(0)
    path = visualize.plot_verification(rng.normal(1, 0.2, 200), rng.normal(2, 0.3, 2000), [1e-3, 1.0], [0.5, 1.0],
                                       1.1, tmp_path / "v.png")
    assert path.is_file() and calls == []  # drawn by matplotlib, not the fallback
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # as if not installed: the fallback draws it
    monkeypatch.setattr(visualize, "_plot_verification_cv2",
                        lambda *a: calls.append(a) or np.full((40, 80, 3), 255, np.uint8))
    visualize.plot_verification(rng.normal(1, 0.2, 200), rng.normal(2, 0.3, 2000), [1e-3, 1.0], [0.5, 1.0], 1.1,
                                tmp_path / "w.png")
    assert (tmp_path / "w.png").is_file() and len(calls) == 1
