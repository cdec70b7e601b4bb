"""Reading a file for a saved model: options not given are the model's, as its training data was read."""

from __future__ import annotations

from types import SimpleNamespace

import pandas as pd
import pytest

from anomaly.errors import DataError
from anomaly.io import READ_DEFAULTS
from anomaly.loading import ReadOptions, frame_for_model

CODED = {"timestamp_col": "time", "duplicates": "mean", "max_gap": 1, "missing_values": [-9999.0]}


def model(reading: dict | None) -> SimpleNamespace:
    """What frame_for_model reads of a fitted detector: its columns, step and reading."""
    return SimpleNamespace(columns_=["a"], interval_=pd.Timedelta(minutes=1), reading_=reading)


def raw(ts: str = "time") -> pd.DataFrame:
    """Six one-minute rows: a code at 00:02, 00:03 given twice, 00:05 missing (a one-point gap)."""
    times = ["00:00", "00:01", "00:02", "00:03", "00:03", "00:04", "00:06"]
    return pd.DataFrame({ts: [f"2024-01-01 {t}" for t in times], "a": [1.0, 2.0, -9999.0, 4.0, 6.0, 6.0, 8.0]})


def test_options_not_given_are_the_saved_ones_then_the_defaults():
    assert ReadOptions().resolved() == ReadOptions(**READ_DEFAULTS)
    assert ReadOptions().resolved(CODED) == ReadOptions(**{**CODED, "missing_values": (-9999.0,)})
    given = ReadOptions(timestamp_col="t", duplicates="error", max_gap=0, missing_values=())
    assert given.resolved(CODED) == given  # each one given wins, an empty list of codes too
    assert ReadOptions(max_gap=5).resolved(CODED).max_gap == 5 and ReadOptions(max_gap=5).resolved(CODED).duplicates == "mean"


def test_saved_is_every_option_as_json_values():
    assert ReadOptions().saved() == {"timestamp_col": "timestamp", "duplicates": "error", "max_gap": 3, "missing_values": []}
    assert ReadOptions(**{**CODED, "missing_values": (-9999.0,)}, columns=["a"]).saved() == CODED  # columns: the model's own


def test_a_file_is_read_for_a_model_as_its_training_data_was():
    frame = frame_for_model(raw(), "coded.csv", ReadOptions(), model(CODED))
    expected = [1.0, 2.0, 3.5, 5.0, 6.0, 7.0, 8.0]  # the code and the gap interpolated, 00:03 averaged
    assert frame["a"].tolist() == expected
    assert frame.index[0] == pd.Timestamp("2024-01-01 00:00") and len(frame) == 7


def test_an_option_given_overrides_the_models():
    with pytest.raises(DataError, match="coded.csv: duplicate timestamp 2024-01-01 00:03:00"):
        frame_for_model(raw(), "coded.csv", ReadOptions(duplicates="error"), model(CODED))
    kept = frame_for_model(raw(), "coded.csv", ReadOptions(missing_values=()), model(CODED))
    assert kept["a"].iloc[2] == -9999.0  # 'none': the code is a reading again


def test_codes_given_that_leave_out_the_models_are_said_to_replace_them(caplog):
    other = frame_for_model(raw(), "coded.csv", ReadOptions(missing_values=(5.0,)), model(CODED))
    assert other["a"].iloc[2] == -9999.0
    assert "coded.csv: the codes given replace the model's: -9999 read as a reading again (give it too" in caplog.text
    caplog.clear()
    frame_for_model(raw(), "coded.csv", ReadOptions(missing_values=(5.0, -9999.0)), model(CODED))
    frame_for_model(raw(), "coded.csv", ReadOptions(missing_values=()), model(CODED))  # 'none': chosen, not said
    assert "replace the model's" not in caplog.text


def test_a_model_without_saved_reading_reads_with_the_defaults():
    with pytest.raises(DataError, match="coded.csv: no timestamp column 'timestamp'"):
        frame_for_model(raw(), "coded.csv", ReadOptions(), model(None))
    frame = frame_for_model(raw("timestamp"), "coded.csv", ReadOptions(duplicates="mean"), model(None))
    assert frame["a"].iloc[2] == -9999.0


def test_a_saved_reading_is_load_series_own_keywords(tmp_path):
    from anomaly.io import load_series

    path = tmp_path / "coded.csv"
    raw().to_csv(path, index=False)
    frame = load_series(path, **CODED)  # as the README shows: load_series("new.csv", **detector.reading_)
    assert frame["a"].tolist() == [1.0, 2.0, 3.5, 5.0, 6.0, 7.0, 8.0]
