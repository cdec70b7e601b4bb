"""Pure helpers of the dashboard: min-max down-sampling, the path guard, folder listings, figures."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from anomaly.dashboard import common, figures
from anomaly.dashboard.common import check_model_name, inside, minmax_indices
from anomaly.errors import ConfigError


# -- minmax_indices -----------------------------------------------------------------------------
def test_short_series_come_back_whole():
    assert minmax_indices(np.arange(10.0), 5).tolist() == list(range(10))


def test_keeps_min_and_max_of_every_bucket():
    values = np.array([3, 1, 4, 1.5, 9, 2, 6, 5, 3, 5, 8, 9.5])  # 12 points, 3 buckets of 4
    keep = minmax_indices(values, 2)  # 12 > 4 -> buckets of 6: [0..5], [6..11]
    # bucket 0: min 1 at 1, max 9 at 4; bucket 1: min 3 at 8, max 9.5 at 11; plus first and last
    assert keep.tolist() == [0, 1, 4, 8, 11]


def test_a_single_spike_survives_heavy_reduction():
    values = np.zeros(100_000)
    values[54_321] = 7.0
    values[12_345] = -3.0
    keep = minmax_indices(values, 500)
    assert 54_321 in keep and 12_345 in keep
    assert len(keep) <= 2 * 500 + 2
    assert np.all(np.diff(keep) > 0)


def test_gaps_stay_gaps():
    values = np.arange(1000.0)
    values[500:520] = np.nan
    keep = minmax_indices(values, 50)
    assert np.isnan(values[keep]).any(), "a NaN must be kept so the drawn line breaks at the gap"
    assert np.isnan(values[keep]).sum() <= 2
    assert keep[0] == 0 and keep[-1] == 999


def test_uneven_length_and_all_nan_bucket():
    values = np.r_[np.full(30, np.nan), np.arange(71.0)]  # 101 points
    keep = minmax_indices(values, 10)
    assert keep.max() == 100 and keep.min() == 0
    assert np.all(keep < 101)


def test_buckets_must_be_positive():
    with pytest.raises(ValueError):
        minmax_indices(np.arange(10.0), 0)


def test_downsample_keeps_the_time_index():
    s = pd.Series(np.sin(np.arange(10_000) / 50), index=pd.date_range("2024", periods=10_000, freq="min"))
    d = common.downsample(s, 100)
    assert len(d) <= 202
    assert d.index.is_monotonic_increasing
    assert d.max() == s.max() and d.min() == s.min()
    assert (d == s.loc[d.index]).all()


# -- the path guard -----------------------------------------------------------------------------
def test_inside_accepts_a_plain_name(tmp_path):
    assert inside(tmp_path, "demo") == (tmp_path / "demo").resolve()
    assert inside(tmp_path, "a/b") == (tmp_path / "a" / "b").resolve()


@pytest.mark.parametrize("name", ["..", "../x", "a/../../x", "/etc/passwd", "", " ", "a\x00b", "."])
def test_inside_refuses_escapes(tmp_path, name):
    base = tmp_path / "models"
    base.mkdir()
    with pytest.raises(ConfigError):
        inside(base, name)


def test_inside_refuses_a_symlink_out(tmp_path):
    base = tmp_path / "models"
    base.mkdir()
    (tmp_path / "secret").mkdir()
    (base / "link").symlink_to(tmp_path / "secret")
    with pytest.raises(ConfigError, match="outside"):
        inside(base, "link")


@pytest.mark.parametrize("name", ["../up", "a/b", ".hidden", "", "x" * 65, "sp ace", "..", "-dash"])
def test_model_names_are_plain(name):
    with pytest.raises(ConfigError):
        check_model_name(name)


def test_model_name_ok():
    assert check_model_name(" my-model_2.1 ") == "my-model_2.1"


def test_folders_from_environment(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # relative folders are relative to where the app was started
    monkeypatch.setenv("ANOMALY_MODELS_DIR", str(tmp_path / "m"))
    monkeypatch.setenv("ANOMALY_DATA_DIR", "rel/data")
    monkeypatch.setenv("ANOMALY_DB", "postgresql+psycopg://u:secret@h/db")
    assert common.models_dir() == (tmp_path / "m").resolve()
    assert common.data_dir() == (tmp_path / "rel" / "data").resolve()
    assert common.db_target() == "postgresql+psycopg://u:secret@h/db"
    assert "secret" not in common.db_label(common.db_target())
    monkeypatch.delenv("ANOMALY_MODELS_DIR")
    monkeypatch.delenv("ANOMALY_DB")
    assert common.models_dir() == (tmp_path / "models").resolve()
    assert common.db_target() == str((tmp_path / "results.db").resolve())


def test_listings(tmp_path):
    (tmp_path / "good").mkdir()
    (tmp_path / "good" / "detector.json").write_text("{}")
    (tmp_path / "empty").mkdir()
    (tmp_path / ".good.tmp-1234").mkdir()
    (tmp_path / ".good.tmp-1234" / "detector.json").write_text("{}")
    (tmp_path / "a.csv").write_text("x")
    (tmp_path / "b.PARQUET").write_text("x")
    (tmp_path / "c.txt").write_text("x")
    assert common.list_models(tmp_path) == ["good"]
    assert common.list_data_files(tmp_path) == ["a.csv", "b.PARQUET"]
    assert common.list_models(tmp_path / "missing") == []


# -- figures ------------------------------------------------------------------------------------
def _scores(n: int, flagged: slice) -> tuple[pd.DataFrame, pd.DataFrame]:
    index = pd.date_range("2024-01-01", periods=n, freq="min", name="timestamp")
    rng = np.random.default_rng(0)
    frame = pd.DataFrame({"a": rng.standard_normal(n), "b": rng.standard_normal(n)}, index=index)
    score = np.abs(rng.standard_normal(n)) * 0.1
    score[flagged] = 5.0
    scores = pd.DataFrame(
        {
            "score": score,
            "threshold": 1.0,
            "is_anomaly": score > 1.0,
            "error_a": score,
            "error_b": score / 2,
            "recon_a": frame["a"] * 0.9,
            "recon_b": frame["b"],
        },
        index=index,
    )
    return frame, scores


def test_series_figure_draws_down_sampled_lines_and_shades_events():
    frame, scores = _scores(50_000, slice(30_000, 30_010))
    events = pd.DataFrame(
        {"start": [scores.index[30_000]], "end": [scores.index[30_009]], "peak_score": [5.0], "severity": [5.0], "sensors": ["a"]}
    )
    fig = figures.series_figure(frame, scores, events, 1.0, ["a", "b"], reconstruction=True)
    lines = [t for t in fig.data if t.mode == "lines"]
    assert [t.name for t in lines] == ["original", "reconstruction", "original", "reconstruction", "score"]
    assert all(len(t.x) <= 2 * common.DRAW_POINTS + 2 for t in lines)
    markers = [t for t in fig.data if t.mode == "markers"]
    assert all(len(t.x) == 10 for t in markers)
    assert float(max(lines[-1].y)) == 5.0  # the peak survives down-sampling
    assert sum(1 for s in fig.layout.shapes if s.type == "rect") == 1  # one band down every row


def test_series_figure_without_values_draws_errors():
    _, scores = _scores(200, slice(10, 12))
    fig = figures.series_figure(None, scores, scores.iloc[:0].assign(severity=[]), 1.0, ["a"])
    assert fig.layout.annotations[0].text == "error of a"
    assert len(fig.data[0].x) == 200


def test_event_figure_range_is_the_padded_event():
    frame, scores = _scores(1000, slice(500, 510))
    event = pd.Series({"start": scores.index[500], "end": scores.index[509]})
    fig = figures.event_figure(frame, scores, event, ["a", "b"], 1.0, pad_rows=20)
    assert pd.Timestamp(fig.layout.xaxis.range[0]) == scores.index[480]
    assert pd.Timestamp(fig.layout.xaxis.range[1]) == scores.index[529]
    assert len(fig.data[0].x) == 50


def test_event_figure_shades_the_neighbours_inside_the_zoom_lighter():
    frame, scores = _scores(1000, slice(500, 510))
    at = scores.index
    events = pd.DataFrame({"start": at[[300, 500, 522, 700]], "end": at[[305, 509, 540, 705]]})
    fig = figures.event_figure(frame, scores, events.iloc[1], ["a", "b"], 1.0, pad_rows=20, others=events)
    bands = sorted({(s.opacity, pd.Timestamp(s.x0)) for s in fig.layout.shapes if s.type == "rect"})  # one per row
    assert bands == [(0.06, at[522]), (0.15, at[500])]  # the neighbour that reaches in; not those outside


def _per_row(n: int = 300) -> tuple[pd.DataFrame, pd.DataFrame, np.ndarray]:
    """Scores whose threshold rises along the series and whose flags outlast the peak (padding)."""
    frame, scores = _scores(n, slice(100, 105))
    limit = np.linspace(1.0, 2.0, n)
    limit[:3] = np.inf  # no threshold yet: drawn as a gap, never as an infinite value
    flags = np.zeros(n, dtype=bool)
    flags[100:120] = True
    return frame, scores.assign(threshold=limit, is_anomaly=flags), limit


def test_series_figure_follows_a_per_row_threshold():
    frame, scores, limit = _per_row()
    no_events = scores.iloc[:0].assign(severity=[])
    fig = figures.series_figure(frame, scores, no_events, None, ["a"])
    line = [t for t in fig.data if t.name == "threshold"]
    assert len(line) == 1 and line[0].yaxis == "y2" and line[0].line.dash == "dash"
    assert np.isnan(np.asarray(line[0].y[:3], dtype=float)).all()
    assert np.asarray(line[0].y[3:], dtype=float) == pytest.approx(limit[3:])
    markers = [t for t in fig.data if t.mode == "markers"]
    assert list(markers[0].x) == list(scores.index[100:120])  # the flags, not score > one number
    assert not [s for s in fig.layout.shapes if s.type == "line"]


def test_series_figure_draws_a_constant_threshold_column_flat():
    frame, scores = _scores(300, slice(100, 105))
    fig = figures.series_figure(frame, scores.assign(threshold=0.75), scores.iloc[:0].assign(severity=[]), None, ["a"])
    assert [s.y0 for s in fig.layout.shapes if s.type == "line"] == [0.75]
    assert "threshold 0.75" in [a.text for a in fig.layout.annotations]
    assert "threshold" not in [t.name for t in fig.data]


def test_rule_figure_shows_threshold_saved_threshold_cap_and_events():
    _, scores, limit = _per_row()
    events = pd.DataFrame(
        {"start": [scores.index[100]], "end": [scores.index[119]], "peak_score": [5.0], "severity": [2.5], "sensors": ["a"]}
    )
    fig = figures.rule_figure(scores, events, 3.0, pd.Series(1.5, index=scores.index))
    names = [t.name for t in fig.data]
    assert names == ["score", "threshold (saved)", "threshold", "flagged"]
    assert np.asarray(fig.data[2].y[3:], dtype=float) == pytest.approx(limit[3:])
    assert set(np.asarray(fig.data[1].y, dtype=float)) == {1.5}
    assert [s.y0 for s in fig.layout.shapes if s.type == "line"] == [3.0]
    assert "cap 3" in [a.text for a in fig.layout.annotations]
    assert len(fig.data[3].x) == 20
    assert sum(1 for s in fig.layout.shapes if s.type == "rect") == 1
    flat = figures.rule_figure(scores.assign(threshold=0.5), events.iloc[:0], None)
    assert [t.name for t in flat.data] == ["score", "threshold", "flagged"]  # the rule's line even when capped flat
    assert not [s for s in flat.layout.shapes if s.type == "line"]


def test_event_figure_ends_with_the_score_and_its_threshold():
    frame, scores, limit = _per_row(1000)
    event = pd.Series({"start": scores.index[500], "end": scores.index[509]})
    fig = figures.event_figure(frame, scores, event, ["a", "b"], None, pad_rows=20)
    assert [a.text for a in fig.layout.annotations] == [
        "a: original vs reconstruction",
        "b: original vs reconstruction",
        "error per sensor",
        "anomaly score",
    ]
    line = [t for t in fig.data if t.name == "threshold"][0]
    assert line.yaxis == "y4" and np.asarray(line.y, dtype=float) == pytest.approx(limit[480:530])


def test_histogram_marks_both_thresholds():
    fig = figures.histogram_figure(np.linspace(0, 1, 100), 0.5, 0.9, np.linspace(0, 3, 10))
    xs = sorted(s.x0 for s in fig.layout.shapes)
    assert xs == [0.5, 0.9]
    assert len(fig.data) == 2


@pytest.mark.parametrize("chosen, model", [(0.5, 0.9), (0.9, 0.5)])
def test_histogram_threshold_labels_sit_outside_the_pair(chosen, model):
    fig = figures.histogram_figure(np.linspace(0, 1, 100), chosen, model, None)
    sides = {a.text: ("left" if a.xanchor == "right" else "right") for a in fig.layout.annotations}
    left, right = ("chosen", "model") if chosen < model else ("model", "chosen")
    assert sides == {left: "left", right: "right"}


def test_many_events_are_capped_and_fast():

    frame, scores = _scores(20_000, slice(0, 0))
    starts = scores.index[::20][:900]
    events = pd.DataFrame(
        {
            "start": starts,
            "end": starts + pd.Timedelta(minutes=5),
            "peak_score": 2.0,
            "severity": np.linspace(1, 3, len(starts)),
            "sensors": "a",
        }
    )
    fig = figures.series_figure(frame, scores, events, 1.0, ["a", "b"])
    rects = [s for s in fig.layout.shapes if s.type == "rect"]
    assert len(rects) == figures.MAX_SHADED_EVENTS
    first = starts[len(starts) - figures.MAX_SHADED_EVENTS]  # the most severe are shaded
    assert min(pd.Timestamp(r.x0) for r in rects) == first - pd.Timedelta(seconds=30)  # half a step before


@pytest.mark.parametrize(
    "step, text",
    [
        (pd.Timedelta(minutes=5), "5min"),
        (pd.Timedelta(hours=1), "1h"),
        (pd.Timedelta(seconds=90), "90s"),
        (pd.Timedelta(days=1), "24h"),
    ],
)
def test_fmt_interval(step, text):
    assert common.fmt_interval(step) == text


@pytest.mark.parametrize(
    "value, text",
    [
        (pd.Timedelta(0), "0s"),
        (pd.Timedelta(seconds=45), "45s"),
        (pd.Timedelta(minutes=220), "03:40"),
        (pd.Timedelta(days=2, hours=4, minutes=30), "2d 04:30"),
        (pd.Timedelta(minutes=5, seconds=30), "00:05:30"),
    ],
)
def test_fmt_duration(value, text):
    assert common.fmt_duration(value) == text


def _events() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "start": pd.to_datetime(["2024-01-01 00:05", "2024-01-02 10:00"]),
            "end": pd.to_datetime(["2024-01-01 01:00", "2024-01-02 10:00"]),
            "peak_score": [3.5, 1.25],
            "severity": [2.0, 1.1],
            "sensors": ["a", "a, b"],
        }
    )


def test_the_events_download_is_the_clis_events_file(tmp_path):
    """The same bytes as `anomaly score --events` writes, whatever the page adds for display."""
    from anomaly.io import write_table

    events = _events()
    write_table(events, tmp_path / "events.csv")
    shown = common._with_duration(events)
    assert "duration" in shown.columns
    assert common.events_csv(shown) == (tmp_path / "events.csv").read_bytes()
    assert b"2024-01-01T00:05:00" in common.events_csv(shown)


def test_the_events_download_appends_the_verdicts_to_each_event():
    """With the database's verdicts (matched_reviews): the same lines, each followed by its verdict columns."""
    stored = pd.DataFrame(
        {
            "verdict": ["false_alarm"],
            "author": ["ana"],
            "at": pd.to_datetime(["2024-01-03 09:00"]),
            "note": ["pump swap"],
            "mute_until": pd.to_datetime([None]),
        }
    )
    events = common._with_duration(_events())
    reviews = common.matched_reviews(stored, [0, None])  # the second event is not stored
    plain = common.events_csv(events).decode().splitlines()
    assert common.events_csv(events, reviews).decode().splitlines() == [
        plain[0] + ",verdict,author,at,note,mute_until",
        plain[1] + ",false_alarm,ana,2024-01-03T09:00:00,pump swap,",
        plain[2] + ",,,,,",
    ]


def test_captured_warnings_still_reach_the_server_log(capsys, monkeypatch):
    """The page shows the loader's warnings; the server's stderr (Python's last resort, with no
    logging configured) keeps them too."""
    import logging

    from anomaly.dashboard.common import logged_warnings

    monkeypatch.setattr(logging.getLogger(), "handlers", [])  # as in the app: pytest's own capture gone
    logger = logging.getLogger("anomaly")
    assert not logger.hasHandlers()
    with logged_warnings() as messages:
        logger.warning("data.csv: rows are not in time order; sorted them")
    assert messages == ["data.csv: rows are not in time order; sorted them"]
    assert "data.csv: rows are not in time order; sorted them" in capsys.readouterr().err
    assert not logger.hasHandlers()
