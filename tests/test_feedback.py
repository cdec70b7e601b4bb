"""Verdicts on events: parsing, what they silence, precision, and the events table joined with them."""

from __future__ import annotations

import pandas as pd
import pytest

from anomaly.errors import ConfigError
from anomaly.feedback import (
    FEEDBACK_COLUMNS,
    REVIEW_TYPES,
    parse_verdict,
    precision,
    precision_by,
    silencing_spans,
    split_silenced,
    with_feedback,
)

T = pd.Timestamp


def reviews(*rows) -> pd.DataFrame:
    """Feedback rows ``(source, model, start, end, verdict[, mute_until])`` in the store's columns."""
    out = []
    for row in rows:
        source, model, start, end, verdict, *mute = row
        out.append(
            {
                "source": source,
                "model": model,
                "start": T(start),
                "end": T(end),
                "verdict": verdict,
                "author": "ana",
                "at": T("2024-02-01"),
                "note": "",
                "mute_until": T(mute[0]) if mute else pd.NaT,
            }
        )
    return pd.DataFrame(out, columns=FEEDBACK_COLUMNS)


def event(source: str, start: str, end: str) -> dict:
    return {"source": source, "model": "m@1", "start": T(start).isoformat(), "end": T(end).isoformat()}


@pytest.mark.parametrize(
    "text, verdict",
    [
        ("true", "true_alarm"),
        ("FALSE", "false_alarm"),
        ("ack", "acknowledged"),
        ("false-alarm", "false_alarm"),
        ("True alarm", "true_alarm"),
        ("acknowledged", "acknowledged"),
    ],
)
def test_parse_verdict(text, verdict):
    assert parse_verdict(text) == verdict


def test_parse_verdict_refuses_others():
    with pytest.raises(ConfigError, match="verdict must be one of true, false, ack .* not 'maybe'"):
        parse_verdict("maybe")


def test_false_alarms_and_acknowledged_events_silence_overlapping_new_events_of_their_source():
    fb = reviews(
        ("pump", "m@1", "2024-01-01 10:00", "2024-01-01 11:00", "false_alarm"),
        ("pump", "m@1", "2024-01-02 10:00", "2024-01-02 11:00", "true_alarm"),
        ("fan", "m@1", "2024-01-03 10:00", "2024-01-03 11:00", "acknowledged", "2024-01-05"),
    )
    new = [
        event("pump", "2024-01-01 10:30", "2024-01-01 12:00"),  # overlaps the false alarm: silenced
        event("pump", "2024-01-01 11:00", "2024-01-01 11:10"),  # touches its end: silenced
        event("pump", "2024-01-01 11:01", "2024-01-01 11:10"),  # after it: alert
        event("pump", "2024-01-02 10:30", "2024-01-02 10:40"),  # overlaps a true alarm: alert
        event("fan", "2024-01-04 00:00", "2024-01-04 01:00"),  # inside the acknowledged event's mute: silenced
        event("fan", "2024-01-05 00:01", "2024-01-05 01:00"),  # after the mute: alert
        event("other", "2024-01-01 10:30", "2024-01-01 10:40"),
    ]  # another source: alert
    alert, silenced = split_silenced(new, fb)
    assert [e["start"][:16] for e in silenced] == ["2024-01-01T10:30", "2024-01-01T11:00", "2024-01-04T00:00"]
    assert [(e["source"], e["start"][:16]) for e in alert] == [
        ("pump", "2024-01-01T11:01"),
        ("pump", "2024-01-02T10:30"),
        ("fan", "2024-01-05T00:01"),
        ("other", "2024-01-01T10:30"),
    ]
    assert split_silenced(new, reviews()) == (new, [])


def test_a_mute_before_the_event_end_does_not_shorten_the_silence():
    fb = reviews(("pump", "m", "2024-01-01 10:00", "2024-01-01 11:00", "acknowledged", "2024-01-01 10:30"))
    assert silencing_spans(fb)["until"].tolist() == [T("2024-01-01 11:00")]


def test_precision_counts_true_and_false_alarms_only():
    fb = reviews(
        ("a", "m1", "2024-01-01", "2024-01-01", "true_alarm"),
        ("a", "m1", "2024-01-02", "2024-01-02", "false_alarm"),
        ("a", "m1", "2024-01-03", "2024-01-03", "true_alarm"),
        ("a", "m2", "2024-01-04", "2024-01-04", "acknowledged"),
    )
    assert precision(fb) == {"reviewed": 4, "true_alarms": 2, "false_alarms": 1, "precision": 2 / 3}
    assert precision(reviews())["precision"] is None
    table = precision_by(fb, "model")
    assert table["model"].tolist() == ["m1", "m2"]
    assert table["precision"].tolist()[0] == pytest.approx(2 / 3) and pd.isna(table["precision"].tolist()[1])


def test_with_feedback_joins_on_source_model_and_start():
    events = pd.DataFrame(
        {
            "source": ["a", "a", "b"],
            "model": ["m", "m", "m"],
            "start": [T("2024-01-01"), T("2024-01-02"), T("2024-01-01")],
            "end": [T("2024-01-01 01:00"), T("2024-01-02 01:00"), T("2024-01-01 01:00")],
        }
    )
    joined = with_feedback(events, reviews(("a", "m", "2024-01-02", "2024-01-02 01:00", "false_alarm")))
    assert joined["verdict"].fillna("").tolist() == ["", "false_alarm", ""]
    assert joined["author"].fillna("").tolist() == ["", "ana", ""]
    assert list(joined.columns) == ["source", "model", "start", "end", "verdict", "author", "at", "note", "mute_until"]
    assert with_feedback(events, reviews())["verdict"].isna().all()
    # typed whether or not an event has a verdict (all NaN was a null Parquet column no other file could join)
    for table in (joined, with_feedback(events, reviews()), with_feedback(events.iloc[:0], reviews())):
        assert dict(table.dtypes.astype(str)) == {
            "source": "string",
            "model": "string",
            "start": str(events["start"].dtype),
            "end": str(events["end"].dtype),
            **{c: str(pd.Series(dtype=kind).dtype) for c, kind in REVIEW_TYPES.items()},
        }
