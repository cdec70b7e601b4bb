"""History: the runs and events the scheduled scorer wrote into the results database, over time."""

from __future__ import annotations

import pandas as pd
import plotly.express as px
import streamlit as st

from anomaly.dashboard import common
from anomaly.feedback import VERDICT_LABELS, precision, precision_by
from anomaly.io import iso_timestamps

st.title("History")
target = common.db_target()
shown_target = common.db_label(target)  # never show a URL's credentials
if not common.db_exists(target):
    st.info(f"No results database yet at {shown_target}: the scheduled scorer (`anomaly score … --db`) creates it.")
    st.stop()
caption, refresh = st.columns([5, 1], vertical_alignment="center")
if refresh.button("Refresh", icon=":material/refresh:", key="hist_refresh", help="Read the results database again now."):
    common.refresh_db()
caption.caption(
    f"Results database: {shown_target}  ·  as it was at most {common.DB_TTL} s before this page was drawn; "
    "the page does not update by itself: Refresh reads the database again"
)
with common.user_errors():  # the store turns a driver's error into one line naming the database
    runs = common.db_runs(target)
    sources = common.db_sources(target)
if runs.empty:
    st.info("No scoring run recorded yet: schedule `anomaly score … --db` to fill this page.")
    st.stop()

source = st.selectbox("Source", ["(all)"] + list(sources), key="hist_source")
chosen = None if source == "(all)" else source
if chosen is not None and "source" in runs.columns:
    runs = runs[runs["source"] == chosen]
runs = runs.assign(started=pd.to_datetime(runs["started"]), finished=pd.to_datetime(runs["finished"]))
with common.user_errors():  # the database may have gone away since the runs were read
    events = common.reviewed_events(target, chosen)
    feedback = common.db_feedback(target, chosen)
    pending = common.db_pending_alerts(target, chosen)
judged = precision(feedback)

m1, m2, m3, m4, m5 = st.columns(5)
m1.metric("Runs", len(runs))
m2.metric("Failed runs", int((runs["status"] == "failed").sum()))
m3.metric(
    "Rows scored (all runs)",
    f"{int(pd.to_numeric(runs['rows_scored'], errors='coerce').fillna(0).sum()):,}",
    help="Summed over the runs: a row that a later run scored again (its context, or --rescore) counts again.",
)
m4.metric("Events", len(events))
m5.metric(
    "Precision (feedback)",
    "–" if judged["precision"] is None else f"{judged['precision']:.0%}",
    help=f"True alarms ÷ (true + false alarms), as marked by people: {judged['true_alarms']} true, "
    f"{judged['false_alarms']} false, {judged['reviewed']} reviewed in all.",
)
common.review_saved_message()
if not pending.empty:  # the outbox: alerts --on-event has not taken yet; the next run sends them again
    failed = int((pending["tries"] > 0).sum())
    st.warning(
        f"{len(pending)} alert(s) not sent yet ({failed} after a failed --on-event command): the next scheduled "
        "run of their source with --on-event sends them. The table below says why the last try failed; "
        "`anomaly events --db DB --drop-pending` deletes those no longer worth sending."
    )
    st.dataframe(
        pending,
        hide_index=True,
        key="hist_pending",
        column_config={
            "start": st.column_config.DatetimeColumn("event start", format="YYYY-MM-DD HH:mm"),
            "queued": st.column_config.DatetimeColumn("queued", format="YYYY-MM-DD HH:mm"),
            "error": "last error",
        },
    )

left, right = st.columns(2)
with left:
    st.markdown("**Runs over time**")
    fig = px.scatter(
        runs,
        x="started",
        y="rows_scored",
        color="status",
        symbol="source" if chosen is None else None,
        hover_data=[c for c in ("id", "model", "source", "error") if c in runs.columns],
    )
    # the legend sits above the plot area (anchored by its bottom), never over the first or last run
    fig.update_layout(height=340, margin=dict(l=10, r=10, t=50, b=10), legend=dict(orientation="h", yanchor="bottom", y=1.02))
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
        fig = px.timeline(
            ev,
            x_start="start",
            x_end="end",
            y="source",
            color="severity",
            hover_data=[c for c in ("model", "peak_score", "sensors") if c in ev.columns],
            color_continuous_scale="Reds",
        )
        fig.update_layout(height=340, margin=dict(l=10, r=10, t=30, b=10))
        st.plotly_chart(fig, key="hist_events", config={"displaylogo": False})

st.markdown("**Model versions**")
# A model is FOLDER@VERSION (anomaly.scheduled.Job.model_name): a retrained model is a new row here.
versions = (
    runs.groupby("model", sort=False)
    .agg(first_run=("started", "min"), last_run=("started", "max"), runs=("id", "count"))
    .reset_index()
    .sort_values("last_run", ascending=False)
)
st.dataframe(
    versions,
    hide_index=True,
    key="hist_versions",
    column_config={
        "first_run": st.column_config.DatetimeColumn("first run", format="YYYY-MM-DD HH:mm"),
        "last_run": st.column_config.DatetimeColumn("last run", format="YYYY-MM-DD HH:mm"),
    },
)
if not feedback.empty:
    st.markdown("**Feedback by model version**")
    st.dataframe(
        precision_by(feedback, "model"),
        hide_index=True,
        key="hist_precision",
        column_config={
            "precision": st.column_config.NumberColumn("precision", format="percent"),
            "true_alarms": "true alarms",
            "false_alarms": "false alarms",
        },
    )
st.markdown("**Runs**")
st.dataframe(runs.sort_values("started", ascending=False), hide_index=True, height=260, key="hist_runs_table")
st.markdown("**Events**")
shown = events.assign(verdict=events["verdict"].map(VERDICT_LABELS))
st.dataframe(
    shown,
    hide_index=True,
    height=260,
    key="hist_events_table",
    column_config={"at": st.column_config.DatetimeColumn("reviewed", format="YYYY-MM-DD HH:mm"), "author": "reviewer"},
)
st.download_button(
    "Download events with verdicts (CSV)",
    iso_timestamps(events).to_csv(index=False).encode(),  # ISO 8601 times, as every events file
    file_name="history_events.csv",
    mime="text/csv",
    key="hist_csv",
)
if not events.empty:
    st.markdown("**Review an event**")
    latest = events.sort_values("start", ascending=False).reset_index(drop=True)
    pick = st.selectbox(
        "Event", range(len(latest)), format_func=lambda i: common.event_label(latest.iloc[i]), key="hist_review_pick"
    )
    common.review_form(target, latest.iloc[pick], key="hist_review")
