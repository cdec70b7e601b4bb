"""History: the runs and events the scheduled scorer wrote into the results database, over time."""

from __future__ import annotations

import pandas as pd
import plotly.express as px
import streamlit as st

from anomaly.errors import AnomalyError
from anomaly.dashboard import common

st.title("History")
target = common.db_target()
shown_target = common.db_label(target)  # never show a URL's credentials
if not common.db_exists(target):
    st.info(f"No results database yet at {shown_target}: the scheduled scorer (`anomaly score … --db`) creates it.")
    st.stop()
st.caption(f"Results database: {shown_target}  ·  refreshed every 30 s")
try:
    runs = common.db_runs(target)
    sources = common.db_sources(target)
except AnomalyError as exc:
    st.error(str(exc))
    st.stop()
except Exception as exc:  # a database driver's own error: one line, never a traceback
    st.error(f"cannot read the results database {shown_target}: {common.first_line(exc)}")
    st.stop()
if runs.empty:
    st.info("No scoring run recorded yet: schedule `anomaly score … --db` to fill this page.")
    st.stop()

source = st.selectbox("Source", ["(all)"] + list(sources), key="hist_source")
chosen = None if source == "(all)" else source
if chosen is not None and "source" in runs.columns:
    runs = runs[runs["source"] == chosen]
runs = runs.assign(started=pd.to_datetime(runs["started"]), finished=pd.to_datetime(runs["finished"]))
events = common.db_events(target, chosen)

m1, m2, m3, m4 = st.columns(4)
m1.metric("Runs", len(runs))
m2.metric("Failed runs", int((runs["status"] == "failed").sum()))
m3.metric("Rows scored", f"{int(pd.to_numeric(runs['rows_scored'], errors='coerce').fillna(0).sum()):,}")
m4.metric("Events", len(events))

left, right = st.columns(2)
with left:
    st.markdown("**Runs over time**")
    fig = px.scatter(runs, x="started", y="rows_scored", color="status", symbol="source" if chosen is None else None,
                     hover_data=[c for c in ("id", "model", "source", "error") if c in runs.columns])
    fig.update_layout(height=340, margin=dict(l=10, r=10, t=30, b=10), legend=dict(orientation="h", y=1.05))
    st.plotly_chart(fig, key="hist_runs", config={"displaylogo": False})
with right:
    st.markdown("**Events over time**")
    if events.empty:
        st.info("No event recorded.")
    else:
        ev = events.assign(start=pd.to_datetime(events["start"]), end=pd.to_datetime(events["end"]))
        # A one-point event has no length; draw every bar at least 1/300 of the span wide so it shows.
        least = max((ev["end"].max() - ev["start"].min()) / 300, pd.Timedelta(seconds=1))
        ev["end"] = ev[["end"]].assign(m=ev["start"] + least).max(axis=1)
        fig = px.timeline(ev, x_start="start", x_end="end", y="source", color="severity",
                          hover_data=[c for c in ("model", "peak_score", "sensors") if c in ev.columns],
                          color_continuous_scale="Reds")
        fig.update_layout(height=340, margin=dict(l=10, r=10, t=30, b=10))
        st.plotly_chart(fig, key="hist_events", config={"displaylogo": False})

st.markdown("**Model versions**")
# A model is FOLDER@VERSION (anomaly.scheduled.Job.model_name): a retrained model is a new row here.
versions = (runs.groupby("model", sort=False)
            .agg(first_run=("started", "min"), last_run=("started", "max"), runs=("id", "count"))
            .reset_index().sort_values("last_run", ascending=False))
st.dataframe(versions, hide_index=True, key="hist_versions",
             column_config={"first_run": st.column_config.DatetimeColumn("first run", format="YYYY-MM-DD HH:mm"),
                            "last_run": st.column_config.DatetimeColumn("last run", format="YYYY-MM-DD HH:mm")})
st.markdown("**Runs**")
st.dataframe(runs.sort_values("started", ascending=False), hide_index=True, height=260, key="hist_runs_table")
st.markdown("**Events**")
st.dataframe(events, hide_index=True, height=260, key="hist_events_table")
st.download_button("Download events (CSV)", events.to_csv(index=False).encode(), file_name="history_events.csv",
                   mime="text/csv", key="hist_csv")
