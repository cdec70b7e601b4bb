"""Property-based tests (Hypothesis) for the invariants the pipeline relies on.

- windows: every row of every segment at least one window long is covered, no window spans a break,
  and the window-to-timestamp mapping (``OverlapMean``) averages exactly the covering windows;
- events: runs never overlap, are sorted, and cover every flagged timestamp;
- loader: on arbitrary CSV text or bytes, ``clean_frame(read_table(path))`` returns a clean frame or
  raises the package's own :class:`~anomaly.errors.AnomalyError`, never anything else.
"""

from __future__ import annotations

import os
import tempfile
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from anomaly.errors import AnomalyError
from anomaly.events import find_events, flagged_runs
from anomaly.io import clean_frame, read_table
from anomaly.windows import OverlapMean, segments, window_starts

# Modest by default so the suite stays fast; ANOMALY_HYPOTHESIS_EXAMPLES=5000 hunts deeper.
FAST = settings(
    max_examples=int(os.environ.get("ANOMALY_HYPOTHESIS_EXAMPLES", "150")),
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)


# -- windows ----------------------------------------------------------------------------------
masks = st.lists(st.booleans(), min_size=0, max_size=120).map(lambda v: np.array(v, dtype=bool))


@st.composite
def mask_window_stride(draw):
    # Breaks come in runs in real data: draw runs of True/False so long segments also appear.
    runs = draw(st.lists(st.tuples(st.booleans(), st.integers(1, 40)), min_size=0, max_size=8))
    mask = np.array([v for v, n in runs for _ in range(n)], dtype=bool)
    if draw(st.booleans()):
        mask = draw(masks)
    window = draw(st.integers(1, 20))
    stride = draw(st.integers(1, window))
    return mask, window, stride


@FAST
@given(mask_window_stride())
def test_windows_cover_every_row_of_long_segments_and_never_span_a_break(case):
    mask, window, stride = case
    starts = window_starts(mask, window, stride)
    assert starts.dtype == np.int64
    assert np.all(np.diff(starts) > 0)  # sorted, distinct
    covered = np.zeros(len(mask), dtype=bool)
    for s in starts:
        assert 0 <= s and s + window <= len(mask)
        assert mask[s : s + window].all(), f"window at {s} spans a break"
        covered[s : s + window] = True
    for lo, hi in segments(mask):
        assert mask[lo:hi].all() and (lo == 0 or not mask[lo - 1]) and (hi == len(mask) or not mask[hi])
        if hi - lo >= window:
            assert covered[lo:hi].all(), f"segment {lo}:{hi} not fully covered"
        else:
            assert not covered[lo:hi].any()
    assert not covered[~mask].any()


@FAST
@given(mask_window_stride(), st.integers(0, 2**32 - 1))
def test_window_to_timestamp_mapping_averages_exactly_the_covering_windows(case, seed):
    mask, window, stride = case
    starts = window_starts(mask, window, stride)
    values = np.random.default_rng(seed).normal(size=(len(starts), window, 2))
    acc = OverlapMean(len(mask), 2)
    for chunk in np.array_split(np.arange(len(starts)), 3):  # in batches, as the detector does
        if len(chunk):
            acc.add(starts[chunk], values[chunk])
    got = acc.mean()
    index = pd.date_range("2024-01-01", periods=len(mask), freq="1min")
    for row in range(len(mask)):
        cover = [(i, row - s) for i, s in enumerate(starts) if s <= row < s + window]
        if cover:
            expected = np.mean([values[i, k] for i, k in cover], axis=0)
            np.testing.assert_allclose(got[row], expected, rtol=1e-12, atol=1e-12)
            # the timestamps of every covering window include this row's timestamp
            assert all(index[row] in index[starts[i] : starts[i] + window] for i, _ in cover)
        else:
            assert np.isnan(got[row]).all()


# -- events -----------------------------------------------------------------------------------
@FAST
@given(masks, st.integers(0, 5), st.integers(1, 5))
def test_flagged_runs_are_sorted_disjoint_and_respect_gap_and_length(flags, merge_gap, min_length):
    runs = flagged_runs(flags, merge_gap, min_length)
    for (s, e), nxt in zip(runs, runs[1:] + [None]):
        assert 0 <= s <= e < len(flags)
        assert flags[s] and flags[e]
        assert e - s + 1 >= min_length
        if nxt is not None:
            assert nxt[0] - e - 1 > merge_gap  # not mergeable, hence also not overlapping
    if min_length == 1:  # nothing dropped: every flagged row lies in a run
        covered = np.zeros(len(flags), dtype=bool)
        for s, e in runs:
            covered[s : e + 1] = True
        assert covered[flags].all()


@FAST
@given(masks)
def test_flagged_runs_without_merging_are_exactly_the_flagged_rows(flags):
    runs = flagged_runs(flags, merge_gap=0, min_length=1)
    covered = np.zeros(len(flags), dtype=bool)
    for s, e in runs:
        assert not covered[s : e + 1].any()
        covered[s : e + 1] = True
    np.testing.assert_array_equal(covered, flags)


@FAST
@given(st.lists(st.one_of(st.floats(0, 3), st.just(float("nan"))), min_size=1, max_size=100), st.floats(0.1, 2.5))
def test_find_events_never_overlap_and_cover_every_flagged_timestamp(scores, threshold):
    score = np.array(scores)
    index = pd.date_range("2024-03-31", periods=len(score), freq="7min", tz="UTC")
    contributions = np.abs(np.nan_to_num(np.stack([score, score / 2], axis=1)))
    events = find_events(index, score, threshold, contributions, ["a", "b"], min_length=1, merge_gap=0)
    assert list(events.columns) == ["start", "end", "peak_score", "severity", "sensors"]
    assert events["start"].is_monotonic_increasing
    assert (events["end"] >= events["start"]).all()
    assert (events["start"].iloc[1:].to_numpy() > events["end"].iloc[:-1].to_numpy()).all()
    flagged = index[np.nan_to_num(score, nan=-np.inf) > threshold]
    for ts in flagged:
        assert ((events["start"] <= ts) & (ts <= events["end"])).sum() == 1
    for ev in events.itertuples():
        inside = score[(index >= ev.start) & (index <= ev.end)]
        assert ev.peak_score == np.nanmax(inside) > threshold
    assert len(events) == len(flagged_runs(np.nan_to_num(score, nan=-np.inf) > threshold))


# -- the loader -------------------------------------------------------------------------------
def _is_clean(frame: pd.DataFrame) -> None:
    assert isinstance(frame, pd.DataFrame)
    assert isinstance(frame.index, pd.DatetimeIndex)
    assert frame.index.is_monotonic_increasing and frame.index.is_unique
    assert len(frame) >= 1 and frame.shape[1] >= 1
    assert all(dtype == np.float64 for dtype in frame.dtypes)
    assert not np.isinf(frame.to_numpy()).any()
    assert np.isfinite(frame.iloc[[0, -1]].to_numpy()).all()  # leading/trailing breaks are trimmed


def _load(content: str | bytes, suffix: str = ".csv", **kwargs):
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / f"data{suffix}"
        if isinstance(content, bytes):
            path.write_bytes(content)
        else:
            path.write_text(content, encoding="utf-8")
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("error", RuntimeWarning)  # no overflow/invalid-value spam either
                frame = clean_frame(read_table(path), str(path), **kwargs)
        except AnomalyError as exc:
            message = str(exc)
            assert message and "\n" not in message, f"error message must be one line: {message!r}"
            return None
        _is_clean(frame)
        return frame


CELLS = st.one_of(
    st.floats(allow_nan=True, allow_infinity=True).map(repr),
    st.integers(-(10**30), 10**30).map(str),
    st.sampled_from(
        [
            "",
            " ",
            "nan",
            "NaN",
            "inf",
            "-inf",
            "1e308",
            "-1e308",
            "1e309",
            "0",
            "1,5",
            "x",
            '"',
            '"a,b"',
            "true",
            "None",
            "NULL",
            "#",
            "\\",
            "0x1A",
            "1_000",
            "١٢",
        ]
    ),
    st.text(max_size=6),
)
TIMES = st.one_of(
    st.datetimes(min_value=pd.Timestamp("1700-01-01").to_pydatetime(), max_value=pd.Timestamp("2200-01-01").to_pydatetime()).map(
        str
    ),
    st.integers(0, 10_000).map(lambda m: str(pd.Timestamp("2024-03-31") + pd.Timedelta(minutes=m))),
    st.integers(0, 2000).map(
        lambda m: (pd.Timestamp("2024-10-27 00:00", tz="Europe/Berlin") + pd.Timedelta(minutes=15 * m)).isoformat()
    ),
    st.sampled_from(
        [
            "",
            "2024-01-01",
            "2024-01-01T00:00:00Z",
            "2024-13-45",
            "yesterday",
            "0",
            "1e10",
            "NaT",
            "2024-01-01 00:00:00+25:00",
            "9999-12-31",
            "0001-01-01",
            "2024-01-01T00:00:00+05:30",
        ]
    ),
    st.text(max_size=10),
)


NUMBERS = st.floats(-1e6, 1e6, allow_nan=False).map(repr)


@st.composite
def csv_texts(draw):
    """CSV text that is often valid (so the cleaning paths run) and often subtly broken."""
    wild = draw(st.integers(0, 3)) == 0  # a quarter of the cases: anything goes
    sep = draw(st.sampled_from([",", ";", "\t", "|", " "])) if wild else draw(st.sampled_from([",", ",", ";", "\t", "|"]))
    names = (
        draw(st.lists(st.one_of(st.sampled_from(["a", "b", "temp", "timestamp", ""]), st.text(max_size=5)), max_size=3))
        if wild
        else draw(st.lists(st.sampled_from(["a", "b", "c", "temp"]), min_size=1, max_size=3, unique=True))
    )
    header = ["timestamp", *names] if (not wild or draw(st.booleans())) else names
    n_rows = draw(st.integers(0, 30) if wild else st.integers(2, 40))
    start = pd.Timestamp(draw(st.sampled_from(["2024-03-31 00:00", "2024-10-27 00:00+02:00", "2024-01-01T00:00:00Z"])))
    step = draw(st.sampled_from([1, 5, 60]))
    lines = [sep.join(header)] if (not wild or draw(st.integers(0, 9))) else []
    for i in range(n_rows):
        if wild:
            ts = draw(TIMES)
        else:
            jitter = draw(st.sampled_from([0] * 12 + [-1, 1, 2, 7, 30]))  # duplicates, disorder, gaps
            ts = (start + pd.Timedelta(minutes=step * (i + jitter))).isoformat(sep=" ")
        n_cells = max(len(header) - 1, 0) + (draw(st.sampled_from([0, 0, 0, 1, -1])) if wild else 0)
        cells = [draw(CELLS) if wild or draw(st.integers(0, 24)) == 0 else draw(NUMBERS) for _ in range(n_cells)]
        lines.append(sep.join([ts, *cells]))
    end = draw(st.sampled_from(["\n", "\r\n", ""]))
    return end.join(lines) + (end if lines else "")


@FAST
@given(csv_texts(), st.sampled_from(["error", "mean"]), st.integers(0, 4))
def test_loader_returns_a_clean_frame_or_raises_its_own_error_on_structured_csv(text, duplicates, max_gap):
    _load(text, duplicates=duplicates, max_gap=max_gap)


@FAST
@given(st.text(max_size=400))
def test_loader_returns_a_clean_frame_or_raises_its_own_error_on_arbitrary_text(text):
    _load(text)


@FAST
@given(st.binary(max_size=400), st.sampled_from([".csv", ".parquet", ".txt"]))
def test_loader_returns_a_clean_frame_or_raises_its_own_error_on_arbitrary_bytes(data, suffix):
    _load(data, suffix)


@FAST
@given(st.lists(st.tuples(st.integers(0, 500), st.floats(-1e6, 1e6)), min_size=1, max_size=60))
def test_clean_frame_of_valid_minutes_is_regular_and_keeps_every_value_it_can(rows):
    """Readings at random whole minutes (duplicates averaged): the result is on one regular grid."""
    text = "timestamp,value\n" + "".join(f"2024-01-01 {m // 60:02d}:{m % 60:02d}:00+00:00,{v!r}\n" for m, v in rows)
    frame = _load(text, duplicates="mean", max_gap=0)
    if len({m for m, _ in rows}) < 2:
        assert frame is None  # one distinct timestamp: no sampling interval to detect
        return
    assert frame is not None
    assert len(set(np.diff(frame.index.asi8))) <= 1
    assert str(frame.index.tz) == "UTC"
