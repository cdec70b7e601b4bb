import numpy as np
import pandas as pd

from anomaly.events import EVENT_COLUMNS, find_events, flagged_runs, top_sensors


def test_flagged_runs_merge_and_min_length():
    flags = np.array([0, 1, 1, 0, 0, 1, 0, 0, 0, 1], dtype=bool)
    assert flagged_runs(flags) == [(1, 2), (5, 5), (9, 9)]
    assert flagged_runs(flags, merge_gap=2) == [(1, 5), (9, 9)]
    assert flagged_runs(flags, min_length=2) == [(1, 2)]
    assert flagged_runs(np.zeros(4, dtype=bool)) == []


def test_top_sensors_lists_those_near_the_top():
    contrib = np.array([[1.0, 10.0, 6.0, 0.1]])
    assert top_sensors(contrib, ["a", "b", "c", "d"]) == ["b", "c"]


def test_find_events_columns_peak_and_severity():
    index = pd.date_range("2024-01-01", periods=8, freq="1min")
    score = np.array([0.1, 0.5, 2.0, 0.4, np.nan, 0.1, 3.0, 0.1])
    contrib = np.zeros((8, 2))
    contrib[:, 0] = 1.0
    contrib[6] = [0.0, 5.0]
    ev = find_events(index, score, 0.45, contrib, ["a", "b"])
    assert list(ev.columns) == EVENT_COLUMNS
    assert ev["start"].tolist() == [index[1], index[6]]
    assert ev["end"].tolist() == [index[2], index[6]]
    assert ev["peak_score"].tolist() == [2.0, 3.0]
    np.testing.assert_allclose(ev["severity"], [2.0 / 0.45, 3.0 / 0.45])
    assert ev["sensors"].tolist() == ["a", "b"]


def test_find_events_none_below_threshold():
    index = pd.date_range("2024-01-01", periods=3, freq="1min")
    ev = find_events(index, np.zeros(3), 1.0, np.zeros((3, 1)), ["a"])
    assert len(ev) == 0 and list(ev.columns) == EVENT_COLUMNS


def test_no_events_are_typed_so_an_empty_parquet_file_joins_a_full_one(tmp_path):
    import pyarrow.dataset as ds

    from anomaly.io import write_table
    from anomaly.postprocess import events_from_flags

    index = pd.date_range("2024-01-01", periods=3, freq="1min", tz="Europe/Berlin")
    none = find_events(index, np.zeros(3), 1.0, np.zeros((3, 1)), ["a"])
    assert list(none.dtypes.astype(str)) == [str(index.dtype)] * 2 + ["float64"] * 2 + ["string"]
    assert str(index.dtype).endswith(", Europe/Berlin]")
    flags = np.zeros(3, dtype=bool)
    causal = events_from_flags(index, np.zeros(3), np.ones(3), flags, np.zeros((3, 1)), ["a"])
    assert causal.dtypes.equals(none.dtypes)
    some = find_events(index, np.array([0.0, 2.0, 0.0]), 1.0, np.ones((3, 1)), ["a"])
    write_table(none, tmp_path / "none.parquet")  # its columns were null: "Unsupported cast from timestamp[us] to null"
    write_table(some, tmp_path / "some.parquet")
    table = ds.dataset([str(tmp_path / "none.parquet"), str(tmp_path / "some.parquet")]).to_table()
    assert table.num_rows == 1 and table.column("sensors").to_pylist() == ["a"]
