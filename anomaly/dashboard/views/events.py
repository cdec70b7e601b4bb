"""Events: the table of events at the current threshold, and a zoom on the one selected."""

from __future__ import annotations

import numpy as np
import pandas as pd
import streamlit as st

from anomaly import scoring
from anomaly.dashboard import common, figures
from anomaly.feedback import VERDICT_LABELS

st.title("Events")
ld = common.load_selected()
detector = ld.detector
events = ld.events().reset_index(drop=True)

st.caption(
    f"Model **{ld.model_name}** on **{ld.source}**, {ld.rule_summary()} "
    f"({'set on the Threshold page' if ld.tuned else 'the model’s'}): "
    f"{len(events)} event(s). Click a column header to sort, a row to zoom on it."
)
if events.empty:
    lower = "lower k or the cap" if ld.rule == common.TRAILING else "lower it"
    st.info(f"No event at this threshold. On the Threshold page, {lower} to see weaker anomalies.")
    st.stop()

table = events.assign(duration=events["duration"].map(common.fmt_duration), sensors=events["sensors"].str.replace(";", ", "))
from_db = ld.frame is None  # the scheduled scorer's scores: its stored events can be reviewed
reviews = None  # the verdict columns of the download, where the table shows verdicts
if from_db:
    with common.user_errors():  # the database may have gone away since the scores were read
        stored = common.reviewed_events(common.db_target(), ld.source)
    matches = [common.stored_match(stored, e.start, e.end) for e in events.itertuples()]
    table["verdict"] = [
        "not stored" if m is None else VERDICT_LABELS.get(stored["verdict"].iloc[m], "not reviewed") for m in matches
    ]
    reviews = common.matched_reviews(stored, matches)
table.index = pd.RangeIndex(1, len(table) + 1, name="#")  # numbered as in the Event picker below
labels = [
    f"#{i + 1}  {common.fmt_time(r.start)} → {common.fmt_time(r.end)}  (severity {r.severity:.2f})"
    for i, r in enumerate(events.itertuples())
]
if st.session_state.get("event_pick") not in range(len(events)):
    st.session_state["event_pick"] = int(events["severity"].to_numpy().argmax())
# The table's highlighted row follows the Event picker (and the picker follows a click on the table):
# one event in view, however it was chosen. Unselecting the row keeps the event, like a radio button.
shown = {"selection": {"rows": [st.session_state["event_pick"]], "columns": [], "cells": []}}
if (st.session_state.get("event_table") or {}).get("selection", {}).get("rows") != shown["selection"]["rows"]:
    st.session_state["event_table"] = shown


def _from_table() -> None:
    rows = st.session_state["event_table"]["selection"]["rows"]
    if rows:
        st.session_state["event_pick"] = int(rows[0])


st.dataframe(
    table,
    key="event_table",
    on_select=_from_table,
    selection_mode="single-row",
    hide_index=False,
    height=260,
    column_config={
        "start": st.column_config.DatetimeColumn("start", format="YYYY-MM-DD HH:mm"),
        "end": st.column_config.DatetimeColumn("end", format="YYYY-MM-DD HH:mm"),
        "peak_score": st.column_config.NumberColumn("peak score", format="%.4g"),
        "severity": st.column_config.NumberColumn(
            "severity", format="%.2f", help="peak score ÷ the threshold in force at the peak"
        ),
        "sensors": st.column_config.TextColumn("top sensors"),
    },
)
c1, c2 = st.columns([3, 1])
pick = c1.selectbox("Event", range(len(events)), format_func=lambda i: labels[i], key="event_pick")
c2.download_button(
    "Download events (CSV)", common.events_csv(events, reviews), file_name="events.csv", mime="text/csv", key="event_csv"
)

event = events.iloc[pick]
pad = max(int(round((event.end - event.start) / detector.interval_)), 2 * int(detector.window), 10)
sensors = list(detector.columns_)
fig = figures.event_figure(ld.frame, ld.flagged, event, sensors, None, pad, others=events)
left, right = st.columns([3, 1])
left.plotly_chart(fig, key="event_chart", config={"displaylogo": False})
inside = ld.scores.loc[event.start : event.end]
errors = inside[scoring.error_columns(sensors)].mean().to_numpy() / np.asarray(detector.error_ref_, dtype=float)
right.markdown(
    f"**Event #{pick + 1}**  \n{common.fmt_time(event.start)} → {common.fmt_time(event.end)}  \n"
    f"peak score {event.peak_score:.4g}, severity {event.severity:.2f}"
)
right.plotly_chart(
    figures.contribution_figure(pd.Series(errors, index=sensors)), key="event_contrib", config={"displaylogo": False}
)
right.caption(
    "Each sensor's mean reconstruction error during the event, as a multiple of its mean error "
    "on normal data: the sensors behind the anomaly stand out."
)

st.subheader("Review")
common.review_saved_message()
if not from_db:
    st.caption(
        "Verdicts (true alarm, false alarm, acknowledged) are kept for the events the scheduled scorer "
        "stored: pick “Scoring database” in the sidebar to review them."
    )
elif matches[pick] is None:
    st.info(
        "The scorer stored no event here: the rule tuned on the Threshold page differs from the scorer's. "
        "The History page lists the stored events."
    )
else:
    common.review_form(common.db_target(), stored.iloc[matches[pick]], key="event_review")
