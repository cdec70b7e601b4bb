"""Plotly figures of the dashboard: data in, figure out (no Streamlit here, so they test alone).

Long traces are drawn through :func:`anomaly.dashboard.common.minmax_indices` (min-max per bucket), never
the scored data itself; markers of flagged points and event shading are capped for the same reason.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from anomaly import scoring
from anomaly.dashboard.common import DRAW_POINTS, downsample

MAX_SHADED_EVENTS = 300  # the most severe events are shaded; more shapes make Plotly sluggish
MAX_MARKERS = 1500  # flagged points drawn (evenly picked); SVG markers beyond this slow the browser
ORIGINAL = "#1f77b4"
RECON = "#ff7f0e"
ANOMALY = "#d62728"
SCORE = "#444444"


def _line(
    series: pd.Series,
    name: str,
    color: str,
    *,
    dash: str | None = None,
    legendgroup: str | None = None,
    showlegend: bool = True,
    buckets: int = DRAW_POINTS,
    width: float = 1.2,
) -> go.Scatter:
    # SVG traces: with at most 2 * DRAW_POINTS points each they stay fast, and unlike WebGL
    # (Scattergl) they draw in every browser, including ones without a GPU.
    drawn = downsample(series.astype(float), buckets)
    return go.Scatter(
        x=drawn.index,
        y=drawn.to_numpy(),
        name=name,
        mode="lines",
        connectgaps=False,
        line=dict(color=color, width=width, dash=dash),
        legendgroup=legendgroup or name,
        showlegend=showlegend,
    )


def _flag_markers(series: pd.Series, flags: np.ndarray, showlegend: bool) -> go.Scatter:
    pos = np.flatnonzero(flags)
    if len(pos) > MAX_MARKERS:
        pos = pos[np.linspace(0, len(pos) - 1, MAX_MARKERS).round().astype(int)]
    return go.Scatter(
        x=series.index[pos],
        y=series.to_numpy()[pos],
        mode="markers",
        name="flagged",
        marker=dict(color=ANOMALY, size=4),
        legendgroup="flagged",
        showlegend=showlegend,
    )


def _shade(fig: go.Figure, events: pd.DataFrame, step: pd.Timedelta) -> int:
    """Shade the most severe events as bands down the whole figure; returns how many were shaded.

    One paper-high rectangle per event, all set at once: ``add_vrect`` per event and row is
    quadratic in Plotly (each call re-validates every shape) and took minutes for a few hundred.
    Each band reaches half a sampling step beyond the event's ends, so a one-point event shows too.
    """
    if events.empty:
        return 0
    chosen = events.nlargest(MAX_SHADED_EVENTS, "severity") if len(events) > MAX_SHADED_EVENTS else events
    half = step / 2
    shapes = [
        dict(
            type="rect",
            xref="x",
            yref="paper",
            x0=start - half,
            x1=end + half,
            y0=0,
            y1=1,
            fillcolor=ANOMALY,
            opacity=0.15,
            line_width=0,
            layer="below",
        )
        for start, end in zip(chosen["start"], chosen["end"])
    ]
    fig.update_layout(shapes=list(fig.layout.shapes) + shapes)
    return len(chosen)


def flat_threshold(scores: pd.DataFrame, threshold: float | None = None) -> float | None:
    """The one threshold to draw as a flat line: ``threshold`` when given, else the scores' ``threshold``
    column when it holds one value (a fixed rule); None when it varies per row (the causal rule)."""
    if threshold is not None:
        return float(threshold)
    limit = scores["threshold"].to_numpy(dtype=float)
    limit = limit[np.isfinite(limit)]
    return float(limit[0]) if len(limit) and np.all(limit == limit[0]) else None


def flags_of(scores: pd.DataFrame, threshold: float | None = None) -> np.ndarray:
    """Flagged rows: ``score > threshold`` for a given number, else the scores' own ``is_anomaly``."""
    if threshold is None:
        return scores["is_anomaly"].to_numpy(dtype=bool)
    return np.nan_to_num(scores["score"].to_numpy(dtype=float), nan=-np.inf) > threshold


def _threshold(
    fig: go.Figure, scores: pd.DataFrame, threshold: float | None, row: int | None = None, *, per_row: bool = False
) -> None:
    """The threshold on the score's row: a flat dashed line with its value, or (``per_row``, or a
    threshold column that varies) a dashed line that follows the per-row ``threshold`` column (rows
    with no finite threshold are left blank)."""
    where = dict(row=row, col=1) if row is not None else {}
    flat = None if per_row else flat_threshold(scores, threshold)
    if flat is not None:
        fig.add_hline(
            y=flat,
            line=dict(color=ANOMALY, dash="dash", width=1.5),
            annotation_text=f"threshold {flat:.4g}",
            annotation_position="top left",
            **where,
        )
        return
    limit = scores["threshold"].astype(float).where(np.isfinite(scores["threshold"].astype(float)))
    fig.add_trace(_line(limit, "threshold", ANOMALY, dash="dash", width=1.5), **where)


def series_figure(
    frame: pd.DataFrame | None,
    scores: pd.DataFrame,
    events: pd.DataFrame,
    threshold: float | None,
    sensors: list[str],
    *,
    reconstruction: bool = False,
) -> go.Figure:
    """Sensors (or, without a frame, their errors) above the anomaly score, on one shared time axis.

    ``threshold`` None: the threshold line follows the scores' per-row ``threshold`` column and the
    flagged points are their ``is_anomaly`` (any rule); a number: a flat line, flagged = above it.
    """
    rows = len(sensors) + 1
    titles = [s if frame is not None else f"error of {s}" for s in sensors] + ["anomaly score"]
    fig = make_subplots(
        rows=rows, cols=1, shared_xaxes=True, vertical_spacing=0.06 / max(rows - 1, 1) + 0.02, subplot_titles=titles
    )
    flags = flags_of(scores, threshold)
    for i, sensor in enumerate(sensors, start=1):
        first = i == 1
        values = frame[sensor] if frame is not None else scores[scoring.error_column(sensor)]
        fig.add_trace(_line(values, "original" if frame is not None else "error", ORIGINAL, showlegend=first), row=i, col=1)
        if reconstruction and scoring.recon_column(sensor) in scores.columns:
            fig.add_trace(_line(scores[scoring.recon_column(sensor)], "reconstruction", RECON, showlegend=first), row=i, col=1)
        fig.add_trace(_flag_markers(values.reindex(scores.index), flags, showlegend=first), row=i, col=1)
    fig.add_trace(_line(scores["score"], "score", SCORE), row=rows, col=1)
    _threshold(fig, scores, threshold, rows)
    step = scores.index[1] - scores.index[0] if len(scores) > 1 else pd.Timedelta(0)
    _shade(fig, events, step)
    fig.update_xaxes(rangeslider=dict(visible=True, thickness=0.06), row=rows, col=1)
    fig.update_layout(
        height=max(420, 190 * rows + 120),
        margin=dict(l=10, r=10, t=40, b=10),
        uirevision="series",
        legend=dict(orientation="h", yanchor="bottom", y=1.02, x=0),
        hovermode="x unified",
    )
    return fig


def histogram_figure(
    normal_scores: np.ndarray, threshold: float, model_threshold: float, series_scores: np.ndarray | None = None
) -> go.Figure:
    """Held-out normal scores (and the scored series') with the chosen and the model's threshold."""
    normal = np.asarray(normal_scores, dtype=float)
    normal = normal[np.isfinite(normal)]
    top = max(float(np.max(normal)) if len(normal) else 0.0, threshold, model_threshold) * 1.15 or 1.0
    fig = go.Figure()
    bins = dict(start=0, end=top, size=top / 60)
    fig.add_trace(
        go.Histogram(
            x=normal, name="normal period (held out)", xbins=bins, histnorm="probability", marker_color=ORIGINAL, opacity=0.75
        )
    )
    if series_scores is not None:
        s = np.asarray(series_scores, dtype=float)
        s = s[np.isfinite(s)]
        fig.add_trace(
            go.Histogram(
                x=np.minimum(s, top),
                name="scored series (clipped at the right edge)",
                xbins=bins,
                histnorm="probability",
                marker_color=RECON,
                opacity=0.5,
            )
        )
    # Each label on the outer side of its line, so two close lines never print over each other.
    chosen_side, model_side = ("top left", "top right") if threshold < model_threshold else ("top right", "top left")
    fig.add_vline(x=threshold, line=dict(color=ANOMALY, width=2), annotation_text="chosen", annotation_position=chosen_side)
    if not np.isclose(threshold, model_threshold):
        fig.add_vline(
            x=model_threshold,
            line=dict(color=SCORE, dash="dot", width=1.5),
            annotation_text="model",
            annotation_position=model_side,
        )
    fig.update_layout(
        barmode="overlay",
        height=360,
        margin=dict(l=10, r=10, t=30, b=10),
        xaxis_title="anomaly score",
        yaxis_title="share of points",
        legend=dict(orientation="h", yanchor="bottom", y=1.02, x=0),
    )
    return fig


def event_figure(
    frame: pd.DataFrame | None,
    scores: pd.DataFrame,
    event,
    sensors: list[str],
    threshold: float | None,
    pad_rows: int,
    others: pd.DataFrame | None = None,
) -> go.Figure:
    """A zoom on one event: each sensor against its reconstruction, the per-sensor errors, and the
    anomaly score against its threshold (``threshold`` as in :func:`series_figure`). The ``others``
    events that reach into the zoom are shaded lighter, so a neighbour's rise is not taken for normal."""
    index = scores.index
    first = int(index.searchsorted(event.start))
    last = int(index.searchsorted(event.end))
    lo = index[max(first - pad_rows, 0)]
    hi = index[min(last + pad_rows, len(index) - 1)]
    part = scores.loc[lo:hi]
    rows = (len(sensors) if frame is not None else 0) + 2
    titles = ([f"{s}: original vs reconstruction" for s in sensors] if frame is not None else []) + [
        "error per sensor",
        "anomaly score",
    ]
    fig = make_subplots(
        rows=rows, cols=1, shared_xaxes=True, vertical_spacing=0.08 / max(rows - 1, 1) + 0.03, subplot_titles=titles
    )
    if frame is not None:
        for i, sensor in enumerate(sensors, start=1):
            fig.add_trace(_line(frame[sensor].loc[lo:hi], "original", ORIGINAL, showlegend=i == 1), row=i, col=1)
            if scoring.recon_column(sensor) in part.columns:
                fig.add_trace(
                    _line(part[scoring.recon_column(sensor)], "reconstruction", RECON, dash="dot", showlegend=i == 1),
                    row=i,
                    col=1,
                )
    palette = ["#2ca02c", "#9467bd", "#8c564b", "#e377c2", "#17becf", "#bcbd22", "#7f7f7f", "#1f77b4"]
    for j, sensor in enumerate(sensors):
        fig.add_trace(
            _line(part[scoring.error_column(sensor)], f"error {sensor}", palette[j % len(palette)]), row=rows - 1, col=1
        )
    fig.add_trace(_line(part["score"], "score", SCORE), row=rows, col=1)
    _threshold(fig, part, threshold, rows)
    fig.add_vrect(x0=event.start, x1=event.end, row="all", col=1, fillcolor=ANOMALY, opacity=0.15, line_width=0, layer="below")
    if others is not None:
        near = others[(others["end"] >= lo) & (others["start"] <= hi) & (others["start"] != event.start)]
        for start, end in zip(near["start"], near["end"]):
            fig.add_vrect(x0=start, x1=end, row="all", col=1, fillcolor=ANOMALY, opacity=0.06, line_width=0, layer="below")
    fig.update_xaxes(range=[lo, hi])
    fig.update_layout(
        height=max(420, 200 * rows + 100),
        margin=dict(l=10, r=10, t=70, b=10),
        legend=dict(orientation="h", yanchor="top", y=0.995, x=0, yref="container"),
        hovermode="x unified",
    )
    return fig


def rule_figure(
    scores: pd.DataFrame, events: pd.DataFrame, cap: float | None, saved_threshold: pd.Series | None = None
) -> go.Figure:
    """The anomaly score against the per-row threshold of the rule in force: its cap as a flat line,
    the flagged points and events, and the saved rule's threshold (dotted) while another is tried."""
    fig = go.Figure()
    fig.add_trace(_line(scores["score"], "score", SCORE))
    if saved_threshold is not None:
        saved = saved_threshold.astype(float)
        fig.add_trace(_line(saved.where(np.isfinite(saved)), "threshold (saved)", "#7f7f7f", dash="dot"))
    _threshold(fig, scores, None, per_row=True)  # even when capped flat: the rule's own line, beside the cap
    if cap is not None:
        fig.add_hline(
            y=cap, line=dict(color=ANOMALY, dash="dot", width=1), annotation_text=f"cap {cap:.4g}", annotation_position="top left"
        )
    fig.add_trace(_flag_markers(scores["score"], flags_of(scores), showlegend=True))
    step = scores.index[1] - scores.index[0] if len(scores) > 1 else pd.Timedelta(0)
    _shade(fig, events, step)
    # The data's own span: Plotly pads an autorange for markers, by days when the last point is flagged.
    span = [scores.index[0], scores.index[-1]] if len(scores) else None
    fig.update_xaxes(range=span, rangeslider=dict(visible=True, thickness=0.08, range=span))
    fig.update_layout(
        height=440,
        margin=dict(l=10, r=10, t=40, b=10),
        uirevision="rule",
        yaxis_title="anomaly score",
        legend=dict(orientation="h", yanchor="bottom", y=1.02, x=0),
        hovermode="x unified",
    )
    return fig


def contribution_figure(contributions: pd.Series) -> go.Figure:
    """Mean error of each sensor over the event, relative to its normal error (1 = as in training)."""
    c = contributions.sort_values()
    fig = go.Figure(
        go.Bar(
            x=c.to_numpy(),
            y=c.index.astype(str),
            orientation="h",
            marker_color=ANOMALY,
            text=[f"{v:.3g}×" for v in c.to_numpy()],
            textposition="auto",
        )
    )
    fig.update_layout(height=max(200, 40 * len(c) + 100), margin=dict(l=10, r=10, t=30, b=10), xaxis_title="× normal error")
    return fig


def loss_figure(history: dict) -> go.Figure:
    """Training and validation loss per epoch."""
    fig = go.Figure()
    for key, name, color in (("loss", "training", ORIGINAL), ("val_loss", "validation", RECON)):
        values = history.get(key) or []
        if values:
            fig.add_trace(
                go.Scatter(x=list(range(1, len(values) + 1)), y=values, name=name, mode="lines+markers", line=dict(color=color))
            )
    epochs = max((len(history.get(k) or []) for k in ("loss", "val_loss")), default=0)
    fig.update_xaxes(tick0=1, dtick=1 if epochs <= 20 else None)  # whole epochs only
    fig.update_layout(
        height=320,
        margin=dict(l=10, r=10, t=30, b=10),
        xaxis_title="epoch",
        yaxis_title="loss (MSE)",
        legend=dict(orientation="h", yanchor="bottom", y=1.02, x=0),
    )
    return fig


def profile_figure(profiles: dict) -> go.Figure:
    """Each profiled sensor's normal level by hour into its period (:mod:`anomaly.seasonal`): what is
    subtracted before the model sees the sensor."""
    fig = go.Figure()
    for column, profile in profiles.items():
        fig.add_trace(go.Scatter(x=profile.offsets / 3600, y=profile.levels, name=f"{column} ({profile.period})", mode="lines"))
    weekly = any(p.period == "week" for p in profiles.values())  # then day profiles show their first day
    fig.update_xaxes(dtick=24 if weekly else 3, range=[0, 168 if weekly else 24])
    fig.update_layout(
        height=280,
        margin=dict(l=10, r=10, t=30, b=10),
        xaxis_title="hours into the week (from Monday 00:00)" if weekly else "hour of day",
        yaxis_title="normal level",
        legend=dict(orientation="h", yanchor="bottom", y=1.02, x=0),
    )
    return fig


def embedding_figure(points: pd.DataFrame, explained: tuple[float, float], log: bool = False) -> go.Figure:
    """Windows as points in the encoder's space projected to 2-D, coloured by anomaly score (``log``:
    by its base-10 logarithm, which separates the many low scores; the hover still gives the score)."""
    hover = points["start"].dt.strftime("%Y-%m-%d %H:%M") + " → " + points["end"].dt.strftime("%Y-%m-%d %H:%M")
    colour = np.log10(np.maximum(points["score"], 1e-12)) if log else points["score"]
    fig = go.Figure(
        go.Scattergl(
            x=points["pc1"],
            y=points["pc2"],
            mode="markers",
            marker=dict(
                color=colour, colorscale="Viridis", size=5, colorbar=dict(title="log10 score" if log else "score"), showscale=True
            ),
            text=hover,
            customdata=points["score"],
            hovertemplate="%{text}<br>score %{customdata:.4g}<extra></extra>",
        )
    )
    fig.update_layout(
        height=560,
        margin=dict(l=10, r=10, t=30, b=10),
        xaxis_title=f"PC 1 ({explained[0]:.0%} of variance)",
        yaxis_title=f"PC 2 ({explained[1]:.0%} of variance)",
    )
    return fig
