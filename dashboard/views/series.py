"""Series: each sensor (and its reconstruction) with events shaded, above the anomaly score."""

from __future__ import annotations

import streamlit as st

from dashboard import common, figures

st.title("Series")
ld = common.load_selected()
detector = ld.detector
threshold = ld.threshold
scores = ld.scores

sensors = list(detector.columns_)
c1, c2 = st.columns([3, 1])
shown = c1.multiselect("Sensors", sensors, default=sensors[:6], key="series_sensors")
recon = c2.toggle("Show reconstruction", value=False, key="series_recon", disabled=ld.frame is None,
                  help="The model's mean reconstruction of each sensor, in the sensor's units.")

start, end = scores.index[0].to_pydatetime(), scores.index[-1].to_pydatetime()
view = st.slider("Time range", min_value=start, max_value=end, value=(start, end), key="series_view",
                 step=detector.interval_.to_pytimedelta(), format="YYYY-MM-DD HH:mm",
                 help="Long series are drawn min-max down-sampled; narrow the range to see every point.")
part = scores.loc[view[0]:view[1]]
frame = ld.frame.loc[view[0]:view[1]] if ld.frame is not None else None
if part.empty:
    st.warning("No data in this time range.")
    st.stop()

events = ld.events(threshold)
visible = events[(events["end"] >= part.index[0]) & (events["start"] <= part.index[-1])]
m1, m2, m3, m4 = st.columns(4)
m1.metric("Points scored", f"{int(scores['score'].notna().sum()):,}")
m2.metric("Threshold", f"{threshold:.4g}",
          delta=None if threshold == ld.default_threshold else f"model: {ld.default_threshold:.4g}", delta_color="off", delta_arrow="off")
m3.metric("Events", len(events))
m4.metric("Flagged points", f"{int((scores['score'] > threshold).sum()):,}")

fig = figures.series_figure(frame, part, visible, threshold, shown or sensors[:1], reconstruction=recon)
st.plotly_chart(fig, key="series_chart", config={"scrollZoom": True, "displaylogo": False})
st.caption(
    f"Model **{ld.model_name}** on **{ld.source}**: {len(part):,} of {len(scores):,} points in view, "
    f"drawn with at most {2 * common.DRAW_POINTS:,} points per line (min and max of each bucket). "
    "Shaded: events at the current threshold (set it on the Threshold page). Drag the range slider below the score to zoom."
)
