"""Series: each sensor (and its reconstruction) with events shaded, above the anomaly score."""

from __future__ import annotations

import streamlit as st

from anomaly.dashboard import common, figures

st.title("Series")
ld = common.load_selected()
detector = ld.detector
scores = ld.flagged  # score, per-row threshold and flags of the rule in force

sensors = list(detector.columns_)
state = st.session_state
if state.get("series_sensors_for") != sensors or "series_sensors" not in state:
    # Another model's sensors (or a first visit): its first six, written into the widget's state before
    # the widget as on the Train page; kept, the last model's sensors are not among the options: none shown.
    state["series_sensors_for"], state["series_sensors"] = sensors, sensors[:6]
c1, c2 = st.columns([3, 1])
shown = c1.multiselect("Sensors", sensors, key=common.kept("series_sensors"))
recon = c2.toggle(
    "Show reconstruction",
    key=common.kept("series_recon", False),
    disabled=ld.frame is None,
    help="The model's mean reconstruction of each sensor, in the sensor's units.",
)

start, end = scores.index[0].to_pydatetime(), scores.index[-1].to_pydatetime()
view = st.slider(
    "Time range",
    min_value=start,
    max_value=end,
    value=(start, end),
    key="series_view",
    step=detector.interval_.to_pytimedelta(),
    format="YYYY-MM-DD HH:mm",
    help="Long series are drawn min-max down-sampled; narrow the range to see every point.",
)
part = scores.loc[view[0] : view[1]]
frame = ld.frame.loc[view[0] : view[1]] if ld.frame is not None else None
if part.empty:
    st.warning("No data in this time range.")
    st.stop()
if len(part) < 2:  # a line needs two points: one would draw empty axes
    st.warning(f"One point in this time range ({common.fmt_time(part.index[0])}): widen it to draw the series.")
    st.stop()

events = ld.events()
visible = events[(events["end"] >= part.index[0]) & (events["start"] <= part.index[-1])]
m1, m2, m3, m4 = st.columns(4)
m1.metric("Points scored", f"{int(scores['score'].notna().sum()):,}")
if ld.rule == common.FIXED:
    # In the chart's units: a root-score model compares (and draws) square roots of its threshold.
    power = 0.5 if detector.root_score else 1.0
    threshold, default = ld.threshold**power, ld.default_threshold**power
    m2.metric(
        "Threshold",
        f"{threshold:.4g}",
        delta=None if threshold == default else f"model: {default:.4g}",
        delta_color="off",
        delta_arrow="off",
        help=f"The square root of {ld.threshold:.4g}, the threshold on the squared error (the Threshold page's units): "
        "this model compares the roots of its scores."
        if detector.root_score
        else None,
    )
elif ld.rule == common.TRAILING:
    m2.metric(
        "Threshold",
        f"k = {ld.flagging['local_k']:g}",
        delta="tuned, not saved" if ld.tuned else None,
        delta_color="off",
        delta_arrow="off",
        help=f"Each point's own threshold: {ld.rule_summary()} (see the Threshold page).",
    )
else:
    m2.metric("Threshold", detector.local_rule, help="Set per point from the whole scored batch.")
m3.metric("Events", len(events))
m4.metric("Flagged points", f"{int(scores['is_anomaly'].sum()):,}")

if not shown:
    st.info("No sensor chosen in Sensors: the chart shows the anomaly score alone.")
fig = figures.series_figure(frame, part, visible, None, shown, reconstruction=recon)
st.plotly_chart(fig, key="series_chart", config={"scrollZoom": True, "displaylogo": False})
rule = "the current threshold" if ld.rule == common.FIXED else "the threshold of each point (dashed: " + ld.rule_summary() + ")"
st.caption(
    f"Model **{ld.model_name}** on **{ld.source}**: {len(part):,} of {len(scores):,} points and "
    f"{len(visible)} of {len(events)} events in view (the metrics above count the whole series), "
    f"drawn with at most {2 * common.DRAW_POINTS:,} points per line (min and max of each bucket). "
    f"Shaded: events at {rule}; set it on the Threshold page. Drag the range slider below the score to zoom."
)
