"""One Plotly figure of a scored series, for notebooks: sensors above, score and threshold below.

>>> from anomaly.plot import plot
>>> scores = detector.score(frame)
>>> plot(scores, detector.events(scores), frame, labels=[("2024-01-02 10:00", "2024-01-02 11:00")])

Plotly is imported when :func:`plot` is called, never when the package is, so the package works
without it (it may become an optional extra). Standalone on purpose: ``dashboard/figures.py``
draws similar figures but imports Streamlit, which the package must never import.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import pandas as pd

from anomaly.errors import DataError
from anomaly.metrics import parse_labels

if TYPE_CHECKING:
    import plotly.graph_objects as go

# The dashboard's colours, so a notebook figure reads like the dashboard's.
SENSOR_COLORS = ("#1f77b4", "#2ca02c", "#9467bd", "#8c564b", "#e377c2", "#17becf", "#bcbd22", "#7f7f7f")
SCORE_COLOR = "#444444"
THRESHOLD_COLOR = "#d62728"
EVENT_COLOR = "#d62728"
LABEL_COLOR = "#2ca02c"
X_TITLE = "time"
DATA_TITLE = "value"
SCORE_TITLE = "anomaly score"


def _plotly():
    """``plotly.graph_objects`` and ``make_subplots``, or an ImportError that says what to install."""
    try:
        import plotly.graph_objects as go
        from plotly.subplots import make_subplots
    except ImportError as exc:
        raise ImportError(
            f"anomaly.plot needs plotly, which is not installed ({exc}): pip install 'lstm-anomaly[dashboard]' (or plotly alone)"
        ) from exc
    return go, make_subplots


def _step(index: pd.Index) -> pd.Timedelta | float:
    """The usual sampling step of ``index``: the median difference (0 for fewer than two rows)."""
    if len(index) < 2:
        return pd.Timedelta(0) if isinstance(index, pd.DatetimeIndex) else 0
    return pd.Series(index).diff().median()


def _bands(intervals: list[tuple], rows: int, half: pd.Timedelta, name: str, color: str, *, dash: str | None) -> list[dict]:
    """One rectangle per interval and row, each from its row's bottom to top, widened half a step each side.

    Shapes are built here and set at once: ``add_vrect`` per interval re-validates every shape and is
    quadratic in their number. The first rectangle stands for all of its kind in the legend.
    """
    shapes = []
    for i, (start, end) in enumerate(intervals):
        for row in range(1, rows + 1):
            axis = "" if row == 1 else str(row)
            shapes.append(
                dict(
                    type="rect",
                    name=name,
                    xref=f"x{axis}",
                    yref=f"y{axis} domain",
                    x0=start - half,
                    x1=end + half,
                    y0=0,
                    y1=1,
                    fillcolor=color,
                    opacity=0.15,
                    layer="below",
                    line=dict(color=color, width=1 if dash else 0, dash=dash),
                    legendgroup=name,
                    showlegend=i == 0 and row == 1,
                )
            )
    return shapes


def plot(
    scores: pd.DataFrame,
    events: pd.DataFrame | None = None,
    data: pd.DataFrame | None = None,
    labels: Sequence[tuple] | None = None,
    *,
    title: str | None = None,
) -> go.Figure:
    """A figure of ``scores`` (a frame from :meth:`LSTMAutoencoderDetector.score`) on one time axis.

    With ``data`` (the scored frame) the top row draws its sensor columns and the bottom row the
    score and the threshold (a line: a local rule's threshold varies); without it, only the score
    row. ``events`` (``start, end`` columns, from ``detect`` or ``events``) are shaded red on
    every row and labelled windows (``[(start, end), ...]``, as in a labels file) green with a
    dashed edge, each widened half a sampling step so a one-row event shows.
    """
    go, make_subplots = _plotly()
    missing = [c for c in ("score", "threshold") if c not in scores.columns]
    if missing:
        raise DataError(f"scores lacks column(s) {', '.join(missing)}: pass a frame returned by detector.score()")
    if events is not None and not {"start", "end"} <= set(events.columns):
        raise DataError("events needs start and end columns: pass a frame returned by detector.detect() or events()")
    tz = getattr(scores.index, "tz", None)
    try:
        windows = parse_labels(labels or [], tz)
    except (TypeError, ValueError) as exc:
        raise DataError(f"labels: {exc}") from None

    rows = 2 if data is not None else 1
    fig = make_subplots(rows=rows, cols=1, shared_xaxes=True, vertical_spacing=0.06)
    if data is not None:
        sensors = [c for c in data.columns if pd.api.types.is_numeric_dtype(data[c])]
        for i, name in enumerate(sensors):
            fig.add_trace(
                go.Scatter(
                    x=data.index,
                    y=data[name].to_numpy(dtype=float),
                    name=str(name),
                    mode="lines",
                    line=dict(color=SENSOR_COLORS[i % len(SENSOR_COLORS)], width=1.2),
                ),
                row=1,
                col=1,
            )
        fig.update_yaxes(title_text=DATA_TITLE, row=1, col=1)
    fig.add_trace(
        go.Scatter(
            x=scores.index,
            y=scores["score"].to_numpy(dtype=float),
            name="score",
            mode="lines",
            line=dict(color=SCORE_COLOR, width=1.2),
        ),
        row=rows,
        col=1,
    )
    fig.add_trace(
        go.Scatter(
            x=scores.index,
            y=scores["threshold"].to_numpy(dtype=float),
            name="threshold",
            mode="lines",
            line=dict(color=THRESHOLD_COLOR, width=1.5, dash="dash"),
        ),
        row=rows,
        col=1,
    )
    fig.update_yaxes(title_text=SCORE_TITLE, row=rows, col=1)
    fig.update_xaxes(title_text=X_TITLE, row=rows, col=1)

    half = _step(scores.index) / 2
    spans = [] if events is None else list(zip(events["start"], events["end"]))
    shapes = _bands(spans, rows, half, "event", EVENT_COLOR, dash=None) + _bands(
        windows, rows, half, "labelled window", LABEL_COLOR, dash="dash"
    )
    fig.update_layout(
        shapes=shapes,
        title=title,
        hovermode="x unified",
        height=320 + 220 * (rows - 1),
        margin=dict(l=10, r=10, t=60 if title else 30, b=10),
        legend=dict(orientation="h", yanchor="bottom", y=1.02, x=0),
    )
    return fig
