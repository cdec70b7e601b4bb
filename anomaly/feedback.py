"""Operators' verdicts on events: true alarm, false alarm, acknowledged; what they silence and measure.

A verdict is kept in the results database (:meth:`anomaly.store.Store.mark_event`) with who gave
it and when. Two things follow from it, both pure functions here:

- **Silencing.** A false alarm or an acknowledged event silences the alerts (``--on-event``, the
  exit code 4) of any *new* event of the same source that overlaps it, or that starts before its
  ``mute_until``. The same incident found again (its start moved when events were recomputed, or
  a retrained model found it) is not sent twice; the events themselves are still stored.
- **Precision.** True alarms / (true + false alarms) among the reviewed events: the share of alerts
  worth a person's time, per source or model version, measured by the people who got them.
"""

from __future__ import annotations

import pandas as pd

from anomaly.errors import ConfigError

VERDICTS = ("true_alarm", "false_alarm", "acknowledged")
SILENCING = ("false_alarm", "acknowledged")
VERDICT_LABELS = {"true_alarm": "true alarm", "false_alarm": "false alarm", "acknowledged": "acknowledged"}
_ALIASES = {"true": "true_alarm", "false": "false_alarm", "ack": "acknowledged"}
FEEDBACK_COLUMNS = ["source", "model", "start", "end", "verdict", "author", "at", "note", "mute_until"]
REVIEW_COLUMNS = ["verdict", "author", "at", "note", "mute_until"]  # what with_feedback adds to events
REVIEW_TYPES = {"verdict": "string", "author": "string", "at": "datetime64[us]", "note": "string", "mute_until": "datetime64[us]"}


def parse_verdict(text: str) -> str:
    """``true_alarm``, ``false_alarm`` or ``acknowledged`` from that or ``true``/``false``/``ack`` (any case, - or _)."""
    key = str(text).strip().lower().replace("-", "_").replace(" ", "_")
    verdict = _ALIASES.get(key, key)
    if verdict not in VERDICTS:
        raise ConfigError(f"verdict must be one of true, false, ack ({', '.join(VERDICTS)}), not '{text}'")
    return verdict


def silencing_spans(feedback: pd.DataFrame) -> pd.DataFrame:
    """``source, start, until``: the time spans in which new events of ``source`` raise no alert."""
    chosen = feedback[feedback["verdict"].isin(SILENCING)]
    until = pd.to_datetime(chosen["end"])
    mute = pd.to_datetime(chosen["mute_until"])
    until = until.where(mute.isna() | (mute <= until), mute)
    return pd.DataFrame(
        {"source": chosen["source"].to_numpy(), "start": pd.to_datetime(chosen["start"]).to_numpy(), "until": until.to_numpy()}
    )


def split_silenced(new_events: list[dict], feedback: pd.DataFrame) -> tuple[list[dict], list[dict]]:
    """``(alert, silenced)``: the new events (store's dicts, ISO ``start``/``end``) split by :func:`silencing_spans`."""
    if not new_events or feedback.empty:
        return list(new_events), []
    spans = silencing_spans(feedback)
    alert, silenced = [], []
    for event in new_events:
        start, end = pd.Timestamp(event["start"]), pd.Timestamp(event["end"])
        mine = spans[spans["source"] == event["source"]]
        hit = ((mine["start"] <= end) & (mine["until"] >= start)).any()
        (silenced if hit else alert).append(event)
    return alert, silenced


def precision(feedback: pd.DataFrame) -> dict:
    """``reviewed``, ``true_alarms``, ``false_alarms`` and ``precision`` (None with no true/false verdict)."""
    true = int((feedback["verdict"] == "true_alarm").sum())
    false = int((feedback["verdict"] == "false_alarm").sum())
    return {
        "reviewed": int(len(feedback)),
        "true_alarms": true,
        "false_alarms": false,
        "precision": true / (true + false) if true + false else None,
    }


def precision_by(feedback: pd.DataFrame, key: str = "model") -> pd.DataFrame:
    """:func:`precision` per value of ``key`` (``model`` or ``source``), most reviewed first."""
    rows = [{key: value, **precision(group)} for value, group in feedback.groupby(key, sort=False)]
    frame = pd.DataFrame(rows, columns=[key, "reviewed", "true_alarms", "false_alarms", "precision"])
    return frame.sort_values("reviewed", ascending=False, kind="stable").reset_index(drop=True)


def with_feedback(events: pd.DataFrame, feedback: pd.DataFrame) -> pd.DataFrame:
    """``events`` (store's columns) with each one's verdict, author, time, note and mute (empty where none)."""
    keys = ["source", "model", "start"]
    reviews = feedback.reindex(columns=keys + REVIEW_COLUMNS)
    events = events.assign(start=pd.to_datetime(events["start"]))
    reviews = reviews.assign(start=pd.to_datetime(reviews["start"]).astype(events["start"].dtype))
    # typed whether or not any event has a verdict: a Parquet file of each kind then joins the other
    return events.merge(reviews, on=keys, how="left").astype({"source": "string", "model": "string", **REVIEW_TYPES})
