"""Which rows an incremental run rewrites: pure numpy, hand-made masks with known answers."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from anomaly.incremental import coverage, event_cutoff, event_frame, ewm_horizon, rows_to_write


def test_ewm_horizon_makes_older_history_negligible():
    assert ewm_horizon(0) == 0 and ewm_horizon(1) == 0
    h = ewm_horizon(5)
    alpha = 2 / 6
    assert (1 - alpha) ** h <= 1e-16 < (1 - alpha) ** (h - 1)


def test_coverage_counts_windows_per_row():
    starts = np.array([0, 1, 2])
    assert coverage(6, starts, 3).tolist() == [1, 2, 3, 2, 1, 0]


def test_nothing_new_nothing_written():
    finite = np.ones(20, dtype=bool)
    assert not rows_to_write(finite, np.ones(20, dtype=bool), window=4).any()


def test_appended_rows_rewrite_the_last_window_minus_one():
    finite = np.ones(20, dtype=bool)
    stored = np.zeros(20, dtype=bool)
    stored[:15] = True
    out = rows_to_write(finite, stored, window=4)
    assert np.flatnonzero(out).tolist() == list(range(12, 20))


def test_first_run_writes_every_covered_row_but_not_breaks():
    finite = np.ones(20, dtype=bool)
    finite[8:10] = False  # a break
    finite[17:] = True
    out = rows_to_write(finite, np.zeros(20, dtype=bool), window=4)
    assert np.flatnonzero(out).tolist() == [*range(0, 8), *range(10, 20)]


def test_short_segment_after_break_is_not_scoreable():
    finite = np.ones(20, dtype=bool)
    finite[15] = False  # rows 16..19 make a 4-row segment, 18..19 only... window 5 cannot fit
    stored = np.zeros(20, dtype=bool)
    stored[:15] = True
    assert not rows_to_write(finite, stored, window=5).any()


def test_backfilled_hole_rewrites_its_neighbourhood_only():
    finite = np.ones(40, dtype=bool)
    stored = np.ones(40, dtype=bool)
    stored[20:22] = False  # late data for rows 20, 21
    out = rows_to_write(finite, stored, window=4)
    assert np.flatnonzero(out).tolist() == list(range(17, 25))


def test_smoothing_extends_the_rewrite_past_a_backfilled_hole():
    finite = np.ones(400, dtype=bool)
    stored = np.ones(400, dtype=bool)
    stored[20] = False
    h = ewm_horizon(5)
    out = rows_to_write(finite, stored, window=4, smoothing=5)
    rows = np.flatnonzero(out)
    assert rows[0] == 17 and rows[-1] == 20 + h + 4 and len(rows) == rows[-1] - 17 + 1


def test_stride_rewrites_the_rest_of_the_segment_and_one_window_before():
    finite = np.ones(40, dtype=bool)
    stored = np.ones(40, dtype=bool)
    stored[20] = False
    out = rows_to_write(finite, stored, window=4, stride=3)
    assert np.flatnonzero(out).tolist() == list(range(16, 40))


def test_event_cutoff_reaches_back_to_a_touching_event():
    t = pd.date_range("2024-01-01", periods=100, freq="min")
    events = pd.DataFrame({"start": [t[10], t[40]], "end": [t[20], t[48]]})
    assert event_cutoff(t[50], events, pd.Timedelta("1min"), 1, 0) == t[40]
    assert event_cutoff(t[70], events, pd.Timedelta("1min"), 2, 3) == t[70 - 7]


def test_event_frame_overlays_new_rows_on_the_grid():
    t = pd.date_range("2024-01-01", periods=6, freq="min")
    stored = pd.DataFrame({"timestamp": t[[0, 1, 2]], "score": [1.0, 2.0, 3.0], "error_a": [1.0, 2.0, 3.0]})
    new = pd.DataFrame(
        {"score": [9.0, 5.0], "threshold": 4.0, "is_anomaly": [True, True], "error_a": [9.0, 5.0]}, index=t[[2, 5]]
    )
    frame = event_frame(stored, new, pd.Timedelta("1min"), 4.0)
    assert frame.index.equals(pd.DatetimeIndex(t, freq="min"))
    assert frame["score"].tolist()[:3] == [1.0, 2.0, 9.0]
    assert np.isnan(frame["score"].iloc[3]) and frame["score"].iloc[5] == 5.0
    assert (frame["threshold"] == 4.0).all()


@pytest.mark.parametrize("window", [1, 3, 8])
def test_written_rows_are_always_covered(window):
    rng = np.random.default_rng(window)
    finite = rng.random(200) > 0.05
    stored = rng.random(200) > 0.3
    from anomaly.windows import window_starts

    covered = coverage(200, window_starts(finite, window), window) > 0
    out = rows_to_write(finite, stored, window=window)
    assert not (out & ~covered).any()
    assert (out | ~covered | stored).all()  # every covered row without a score is written
