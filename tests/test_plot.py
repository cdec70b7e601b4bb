"""anomaly.plot: the notebook figure of a scored series (traces, shaded events and labels, axes)."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pandas as pd
import pytest

from anomaly.errors import DataError
from anomaly.plot import plot
from tests.conftest import ROOT, make_series

STEP = pd.Timedelta("1min")


@pytest.fixture
def data() -> pd.DataFrame:
    return make_series(n=120)


@pytest.fixture
def scores(data) -> pd.DataFrame:
    """A frame shaped like detector.score's: NaN before the first window, a threshold that varies (a local rule)."""
    rng = np.random.default_rng(1)
    score = rng.random(len(data))
    score[:7] = np.nan
    threshold = np.linspace(0.8, 0.9, len(data))
    frame = pd.DataFrame({"score": score, "threshold": threshold}, index=data.index)
    frame["is_anomaly"] = score > threshold
    for name in data.columns:
        frame[f"error_{name}"] = score
    return frame


@pytest.fixture
def events(data) -> pd.DataFrame:
    ix = data.index
    return pd.DataFrame(
        {
            "start": [ix[20], ix[70]],
            "end": [ix[25], ix[70]],
            "peak_score": [1.0, 2.0],
            "severity": [1.1, 2.2],
            "sensors": ["s0", "s1"],
        }
    )


LABELS = [
    ("2024-01-01 00:10", "2024-01-01 00:15"),
    ("2024-01-01 01:00", "2024-01-01 01:05"),
    ("2024-01-01 01:30", "2024-01-01 01:31"),
]


def _named(fig, name: str) -> list:
    return [s for s in fig.layout.shapes if s.name == name]


def test_two_rows_with_data_events_and_labels(data, scores, events):
    fig = plot(scores, events, data, LABELS, title="pump 3")
    assert [t.name for t in fig.data] == ["s0", "s1", "score", "threshold"]
    assert [(t.xaxis, t.yaxis) for t in fig.data] == [("x", "y"), ("x", "y"), ("x2", "y2"), ("x2", "y2")]
    np.testing.assert_array_equal(fig.data[0].y, data["s0"].to_numpy())
    np.testing.assert_array_equal(fig.data[2].y, scores["score"].to_numpy())  # NaN kept: gaps stay gaps
    np.testing.assert_array_equal(fig.data[3].y, scores["threshold"].to_numpy())

    assert len(fig.layout.shapes) == 2 * 2 + 3 * 2  # every event and label on both rows
    event_rects, label_rects = _named(fig, "event"), _named(fig, "labelled window")
    assert len(event_rects) == 4 and len(label_rects) == 6
    assert [(s.xref, s.yref) for s in event_rects] == [("x", "y domain"), ("x2", "y2 domain")] * 2
    assert {(s.y0, s.y1) for s in fig.layout.shapes} == {(0, 1)}
    assert event_rects[0].fillcolor != label_rects[0].fillcolor and label_rects[0].line.dash == "dash"
    # Widened half a step each side, so the one-row event at row 70 has a width.
    assert pd.Timestamp(event_rects[2].x0) == events["start"][1] - STEP / 2
    assert pd.Timestamp(event_rects[2].x1) == events["end"][1] + STEP / 2
    assert pd.Timestamp(label_rects[0].x0) == pd.Timestamp(LABELS[0][0]) - STEP / 2
    assert [s.name for s in fig.layout.shapes if s.showlegend] == ["event", "labelled window"]

    assert fig.layout.yaxis.title.text == "value"
    assert fig.layout.yaxis2.title.text == "anomaly score"
    assert fig.layout.xaxis2.title.text == "time"
    assert fig.layout.xaxis.title.text is None
    assert fig.layout.xaxis.matches == "x2"  # one shared time axis
    assert fig.layout.title.text == "pump 3"


def test_without_data_only_the_score_row(scores, events):
    fig = plot(scores, events)
    assert [t.name for t in fig.data] == ["score", "threshold"]
    assert {(t.xaxis, t.yaxis) for t in fig.data} == {("x", "y")}
    assert len(_named(fig, "event")) == 2 and not _named(fig, "labelled window")
    assert [(s.xref, s.yref) for s in fig.layout.shapes] == [("x", "y domain")] * 2
    assert fig.layout.yaxis.title.text == "anomaly score" and fig.layout.xaxis.title.text == "time"
    assert "yaxis2" not in fig.layout.to_plotly_json()
    assert fig.layout.title.text is None


def test_nothing_to_shade(scores, data):
    assert len(plot(scores, data=data).layout.shapes) == 0
    assert len(plot(scores, pd.DataFrame(columns=["start", "end"]), data, []).layout.shapes) == 0


def test_labels_take_the_series_time_zone(scores, events):
    utc = scores.tz_localize("UTC")
    fig = plot(utc, None, labels=[LABELS[0]])
    (rect,) = _named(fig, "labelled window")
    assert pd.Timestamp(rect.x0) == pd.Timestamp(LABELS[0][0], tz="UTC") - STEP / 2


@pytest.mark.parametrize(
    "bad, message",
    [
        (dict(scores=lambda s: s.drop(columns="threshold")), "threshold"),
        (dict(events=pd.DataFrame({"begin": []})), "start and end"),
        (dict(labels=[("2024-01-01 00:10",)]), "labels"),
        (dict(labels=[("2024-01-01 00:10", "not a time")]), "labels"),
    ],
)
def test_bad_input_is_a_data_error(scores, bad, message):
    args = dict(scores=scores, events=None, labels=None)
    for key, value in bad.items():
        args[key] = value(scores) if callable(value) else value
    with pytest.raises(DataError, match=message):
        plot(args["scores"], args["events"], labels=args["labels"])


def test_without_plotly_a_clear_import_error(scores, monkeypatch):
    for name in ("plotly", "plotly.graph_objects", "plotly.subplots"):
        monkeypatch.setitem(sys.modules, name, None)  # what a missing package looks like to import
    with pytest.raises(ImportError, match=r"anomaly.plot needs plotly.*pip install"):
        plot(scores)


def test_importing_the_module_imports_neither_plotly_nor_the_dashboard():
    code = "import sys, anomaly.plot; print(sorted({'plotly', 'streamlit', 'dashboard'} & set(sys.modules)))"
    out = subprocess.run(
        [sys.executable, "-c", code],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"},
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]"
