"""The loader's documented rules, in process (fast): delimiters, inf, order, duplicates, time zones,
irregular sampling, gaps and breaks, stray timestamps, and atomic output files."""

from __future__ import annotations

import logging
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from reliability_support import entries, series, write_csv

from anomaly.errors import DataError
from anomaly.io import clean_frame, load_series, missing_value_codes, read_table, write_table, write_tables


@pytest.fixture
def csv(tmp_path):
    def make(frame: pd.DataFrame, name: str = "data.csv", **kwargs) -> Path:
        return write_csv(frame, tmp_path / name, **kwargs)

    return make


def test_semicolon_tab_and_pipe_files_load_like_comma_files(csv):
    expected = load_series(csv(series(), "comma.csv"))
    for i, sep in enumerate([";", "\t", "|"]):
        pd.testing.assert_frame_equal(load_series(csv(series(), f"f{i}.csv", sep=sep)), expected)


def test_clean_frame_is_regular_float_and_utc_for_offsets(csv):
    frame = load_series(csv(series(tz="America/New_York")))
    assert str(frame.index.tz) == "UTC" and frame.index.freq == pd.Timedelta("1min")
    assert list(frame.dtypes) == [np.float64, np.float64] and len(frame) == 400


def test_inf_is_missing_and_short_gaps_are_interpolated_in_time(csv, caplog):
    raw = series()
    raw.loc[100, "a"] = np.inf
    raw.loc[200, "b"] = -np.inf
    with caplog.at_level(logging.WARNING, logger="anomaly"):
        frame = load_series(csv(raw))
    assert "2 infinite value(s) treated as missing" in caplog.text
    values = series()
    assert frame["a"].iloc[100] == pytest.approx((values["a"][99] + values["a"][101]) / 2)
    assert frame["b"].iloc[200] == pytest.approx((values["b"][199] + values["b"][201]) / 2)


def test_gaps_longer_than_max_gap_stay_as_breaks(csv):
    raw = series().drop(index=[*range(50, 53), *range(100, 104)])  # 3 missing: filled; 4 missing: a break
    frame = load_series(csv(raw), max_gap=3)
    assert len(frame) == 400
    assert frame.iloc[50:53].notna().all().all()
    assert frame.iloc[100:104].isna().all().all() and frame.iloc[[99, 104]].notna().all().all()
    assert load_series(csv(raw, "again.csv"), max_gap=0).iloc[50:53].isna().all().all()


def test_clean_frame_marks_the_rows_it_filled_in():
    raw = series().drop(index=[*range(50, 53), *range(100, 104)])
    raw.loc[200, raw.columns[1]] = np.nan  # one sensor's cell missing: filled in too
    frame, filled = clean_frame(raw, max_gap=3, marking_filled=True)
    pd.testing.assert_frame_equal(frame, clean_frame(raw, max_gap=3))
    assert np.flatnonzero(filled).tolist() == [50, 51, 52, 200]  # not the break at 100-103, which stays NaN


def test_unsorted_rows_are_sorted_with_a_warning(csv, caplog):
    with caplog.at_level(logging.WARNING, logger="anomaly"):
        frame = load_series(csv(series().iloc[::-1]))
    assert "not in time order" in caplog.text
    pd.testing.assert_frame_equal(frame, load_series(csv(series(), "sorted.csv")))


def test_duplicate_policy(csv):
    raw = series()
    dup = pd.concat([raw, raw.iloc[[10]].assign(a=raw.loc[10, "a"] + 2.0)])
    with pytest.raises(DataError, match=r"duplicate timestamp 2024-01-01 00:10:00 \(1 in all\)"):
        load_series(csv(dup))
    frame = load_series(csv(dup, "again.csv"), duplicates="mean")
    assert frame["a"].iloc[10] == pytest.approx(raw.loc[10, "a"] + 1.0) and len(frame) == 400
    with pytest.raises(DataError, match="duplicates policy"):
        load_series(csv(raw, "third.csv"), duplicates="first")


def test_dst_spring_and_autumn_in_local_offsets(csv):
    for start in ("2024-03-31 00:00", "2024-10-27 00:00"):
        utc = pd.date_range(start, periods=400, freq="1min", tz="UTC")
        raw = series().assign(timestamp=[t.tz_convert("Europe/Berlin").isoformat() for t in utc])
        frame = load_series(csv(raw, f"{start[:10]}.csv"))
        assert frame.index.equals(pd.DatetimeIndex(utc, name="timestamp", freq="1min"))


def test_naive_local_times_repeated_at_the_autumn_change_are_duplicates(csv):
    utc = pd.date_range("2024-10-27 00:00", periods=400, freq="1min", tz="UTC")
    raw = series().assign(timestamp=[str(t.tz_convert("Europe/Berlin").tz_localize(None)) for t in utc])
    with pytest.raises(
        DataError,
        match=r"duplicate timestamp 2024-10-27 02:00:00 \(60 in all\), all within an hour, as when a clock is set back "
        r"at the end of daylight saving: write the times with their UTC offset, or use --duplicates mean",
    ):
        load_series(csv(raw))


def test_ordinary_duplicates_get_no_daylight_saving_hint(csv):
    """Two minutes written twice, or one minute many times, are not a clock set back an hour."""
    raw = series()
    for repeats, first, count in [([5, 6], "2024-01-01 00:05:00", 2), ([7] * 19, "2024-01-01 00:07:00", 19)]:
        with pytest.raises(DataError, match=r"\(\d+ in all\)") as error:
            load_series(csv(pd.concat([raw, raw.iloc[repeats]]).sort_values("timestamp"), "dups.csv"))
        assert str(error.value).endswith(
            f"dups.csv: duplicate timestamp {first} ({count} in all); use --duplicates mean to average them"
        )


def year_last(fmt: str, start: str, n: int = 400, freq: str = "1h") -> pd.DataFrame:
    """``series()`` with its timestamps written year last in ``fmt`` (01/02/2024 13:00 and the like)."""
    index = pd.date_range(start, periods=n, freq=freq)
    return series(n).assign(timestamp=index.strftime(fmt))


@pytest.mark.parametrize("fmt", ["%d/%m/%Y %H:%M", "%m/%d/%Y %H:%M", "%d.%m.%y %H:%M", "%d-%m-%Y %H:%M"])
def test_year_last_dates_are_read_in_one_order_for_the_whole_column(csv, fmt):
    """30/01 and 01/02 in one column: day first throughout (pandas alone reads 01/02 as 2 January)."""
    frame = load_series(csv(year_last(fmt, "2024-01-25")))
    assert frame.index.equals(pd.DatetimeIndex(pd.date_range("2024-01-25", periods=400, freq="1h"), name="timestamp"))


def test_year_last_dates_with_no_day_over_12_take_the_order_that_keeps_the_step(csv):
    # 01/02 .. 12/02, hourly: read month first they would jump a month every 24 rows
    frame = load_series(csv(year_last("%d/%m/%Y %H:%M", "2024-02-01", n=24 * 12)))
    assert frame.index[[0, -1]].tolist() == [pd.Timestamp("2024-02-01 00:00"), pd.Timestamp("2024-02-12 23:00")]
    frame = load_series(csv(year_last("%m/%d/%Y %H:%M", "2024-02-01", n=24 * 12)))
    assert frame.index[[0, -1]].tolist() == [pd.Timestamp("2024-02-01 00:00"), pd.Timestamp("2024-02-12 23:00")]


@pytest.mark.parametrize("fmt", ["%m/%d/%Y", "%d/%m/%Y"])
def test_monthly_year_last_dates_are_months_apart_in_either_order(fmt):
    """No day over 12 and every row on the 1st: the reading that spreads them a month apart wins,
    not the one that crowds them into the first days of January."""
    from anomaly.io import parse_timestamps

    written = pd.Series(pd.date_range("2022-01-01", periods=36, freq="MS").strftime(fmt))
    parsed = parse_timestamps(written, "monthly.csv", "timestamp")
    assert parsed.equals(pd.DatetimeIndex(pd.date_range("2022-01-01", periods=36, freq="MS"), name="timestamp"))


def test_a_semicolon_file_with_only_three_digits_after_commas_is_not_guessed(csv):
    """1,000 may be a thousand or one: refused as non-numeric, as before decimal commas were read."""
    raw = series(50).assign(a=[f"{i},000" for i in range(1, 51)])
    with pytest.raises(DataError, match=r"column 'a', line 2: non-numeric value '1,000' \(if that comma is a decimal mark"):
        load_series(csv(raw, sep=";"), columns=["a"])


def test_three_digits_after_a_comma_that_cannot_group_thousands_are_decimals(csv):
    """0,125 (no thousands group follows 0) and 1013,250 (four digits before it) are decimal commas."""
    raw = series(50).assign(a=[f"0,{125 + i:03d}" for i in range(50)], b=[f"{1013 + i},250" for i in range(50)])
    frame = load_series(csv(raw, sep=";"))
    assert frame["a"].iloc[:2].tolist() == [0.125, 0.126] and frame["b"].iloc[:2].tolist() == [1013.25, 1014.25]


def test_year_last_dates_in_both_orders_are_an_error_naming_both_lines(csv):
    raw = year_last("%d/%m/%Y %H:%M", "2024-01-25")
    raw.loc[300, "timestamp"] = "02/13/2024 12:00"
    with pytest.raises(
        DataError,
        match=r"data.csv: column 'timestamp' writes dates day first \(line 2: '25/01/2024 00:00'\) "
        r"and month first \(line 302: '02/13/2024 12:00'\)",
    ):
        load_series(csv(raw))


def test_naive_mixed_with_aware_is_an_error_naming_the_line(csv):
    raw = series(tz="UTC")
    raw.loc[3, "timestamp"] = "2024-01-01 00:03:00"
    with pytest.raises(DataError, match=r"line 5: timestamp '2024-01-01 00:03:00' .* no time zone"):
        load_series(csv(raw))


def test_a_zone_hidden_by_trailing_text_among_naive_timestamps_is_an_error_naming_the_line(csv):
    """'+02:00;' escapes the offset pattern but pandas still reads the zone (found by tests/test_properties.py)."""
    raw = series()
    raw["timestamp"] = raw["timestamp"].astype(str)
    raw.loc[3, "timestamp"] = "2024-01-01T00:03:00+02:00;"
    with pytest.raises(DataError, match=r"line 5: timestamp '2024-01-01T00:03:00\+02:00;' .* has a time zone while others"):
        load_series(csv(raw))


def test_irregular_sampling_resamples_to_the_median_step(csv):
    raw = series()
    jitter = np.random.default_rng(2).integers(-15, 15, size=400)
    raw["timestamp"] = [str(pd.Timestamp(t) + pd.Timedelta(seconds=int(s))) for t, s in zip(raw["timestamp"], jitter)]
    frame = load_series(csv(raw))
    assert set(np.diff(frame.index.as_unit("ns").asi8)) == {60 * 10**9}
    # each reading in the bin centred on its minute: none averaged with a neighbour, none lost
    assert len(frame) == 400 and frame.index[0] == pd.Timestamp(raw["timestamp"][0])
    np.testing.assert_allclose(frame[["a", "b"]].to_numpy(), raw[["a", "b"]].to_numpy())


def test_daily_readings_on_a_local_clock_keep_one_reading_a_day_across_daylight_saving(csv):
    """Read in UTC, a reading at local midnight moves an hour at a DST change; it stays its day's."""
    days = pd.date_range("2024-03-20", periods=20, freq="D", tz="Europe/Berlin")
    frame = load_series(csv(pd.DataFrame({"timestamp": [t.isoformat() for t in days], "value": np.arange(20.0)})))
    assert frame["value"].tolist() == list(range(20))  # before: 11 and 12 averaged, a day lost
    assert frame.index.equals(pd.date_range("2024-03-19 23:00", periods=20, freq="D", tz="UTC", name="timestamp"))


def test_a_stray_timestamp_is_refused_instead_of_exhausting_memory(csv):
    raw = series(50)
    raw.loc[49, "timestamp"] = "2224-01-01 00:00:00"
    with pytest.raises(DataError, match=r"would make 105,1\d\d,\d\d\d rows .* is a timestamp wrong"):
        load_series(csv(raw))


@pytest.mark.parametrize("bad", [-1, 1.5, "3", True, None])
def test_max_gap_must_be_a_count(csv, bad):
    with pytest.raises(DataError, match=rf"max_gap must be an integer >= 0 .*not {re.escape(repr(bad))}"):
        load_series(csv(series()), max_gap=bad)


def test_forced_interval_and_no_row_with_every_sensor(csv):
    raw = series()
    raw.loc[::2, "a"] = np.nan
    raw.loc[1::2, "b"] = np.nan
    with pytest.raises(DataError, match="no row has a value for every sensor"):
        load_series(csv(raw), max_gap=0)
    assert len(load_series(csv(series(), "ok.csv"), interval="2min")) == 200


def test_columns_option(csv):
    path = csv(series().assign(name="x"))
    assert list(load_series(path, columns=["b"]).columns) == ["b"]
    with pytest.raises(DataError, match=r"no column 'c' \(columns: timestamp, a, b, name\)"):
        load_series(path, columns=["a", "c"])
    with pytest.raises(DataError, match="column 'name', line 2: non-numeric value 'x'"):
        load_series(path, columns=["name"])


def test_a_column_of_spaced_markers_only_is_a_sensor_with_no_values(tmp_path, caplog):
    path = tmp_path / "d.csv"
    path.write_text("timestamp,a,c\n2024-01-01 00:00,1,NA \n2024-01-01 00:01,2, n/a\n2024-01-01 00:02,3,NA \n")
    with caplog.at_level(logging.WARNING, logger="anomaly"):
        assert load_series(path).columns.tolist() == ["a"]
    assert "skipping column(s) with no values: 'c'" in caplog.text


@pytest.mark.parametrize("marker", ["NA ", " n/a", "null", "#N/A", "None ", "  "])
def test_missing_markers_count_as_missing_with_spaces_and_in_parquet_text(tmp_path, csv, marker):
    raw = series().astype({"a": str})
    raw.loc[100, "a"] = marker
    expected = load_series(csv(series().assign(a=series()["a"].where(series().index != 100)), "plain.csv"))
    pd.testing.assert_frame_equal(load_series(csv(raw, "text.csv")), expected)  # the marker written as is
    raw.to_parquet(tmp_path / "text.parquet", index=False)  # a text column: read_csv's markers never applied
    pd.testing.assert_frame_equal(load_series(tmp_path / "text.parquet"), expected)


def test_parquet_round_trip_and_broken_parquet(tmp_path):
    frame = series()
    frame["timestamp"] = pd.to_datetime(frame["timestamp"]).dt.tz_localize("Europe/Berlin")
    frame.to_parquet(tmp_path / "d.parquet", index=False)
    loaded = load_series(tmp_path / "d.parquet")
    assert str(loaded.index.tz) == "UTC" and len(loaded) == 400
    frame.set_index("timestamp").to_parquet(tmp_path / "indexed.parquet")  # pandas keeps a named index
    pd.testing.assert_frame_equal(load_series(tmp_path / "indexed.parquet"), loaded)
    frame.set_index("timestamp").rename_axis(None).to_parquet(tmp_path / "unnamed.parquet")  # and an unnamed one
    pd.testing.assert_frame_equal(load_series(tmp_path / "unnamed.parquet"), loaded)
    frame = frame.astype({"a": str})
    frame.loc[7, "a"] = "seven"
    frame.to_parquet(tmp_path / "text.parquet", index=False)
    with pytest.raises(DataError, match="column 'a', row 8: non-numeric value 'seven'"):
        load_series(tmp_path / "text.parquet")
    (tmp_path / "bad.parquet").write_bytes(b"PAR1 not really")
    with pytest.raises(DataError, match="not a readable Parquet file"):
        read_table(tmp_path / "bad.parquet")


def test_utf8_byte_order_mark_is_accepted(tmp_path):
    path = tmp_path / "excel.csv"
    path.write_bytes(b"\xef\xbb\xbf" + series(20).to_csv(index=False).encode())
    assert list(load_series(path).columns) == ["a", "b"]


@pytest.mark.parametrize(
    "content, message",
    [
        ("timestamp,a\n2024-01-01,1\n".encode("utf-16"), "UTF-16 text; save it as UTF-8"),
        (b"", "file is empty"),
        (b"\n\n", "first line is empty"),
        (b"timestamp,a\n", "no data rows"),
        (b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR", "binary content"),
        ("timestamp,a\n2024-01-01,\u00e9\n".encode("cp1252"), "not UTF-8 text (byte 0xe9"),
        (b'timestamp,a\n"2024-01-01,1\n', "malformed CSV"),
    ],
)
def test_unreadable_files(tmp_path, content, message):
    path = tmp_path / "x.csv"
    path.write_bytes(content)
    with pytest.raises(DataError, match=message.replace("(", r"\(")) as info:
        clean_frame(read_table(path), str(path))
    assert str(info.value).startswith(str(path)) and "\n" not in str(info.value)


# -- atomic output ---------------------------------------------------------------------------
def test_write_table_interrupted_midway_keeps_the_previous_file(tmp_path, monkeypatch):
    out = tmp_path / "scores.csv"
    out.write_text("previous\n")
    original = pd.DataFrame.to_csv

    def half_then_interrupt(self, path, *args, **kwargs):
        original(self.iloc[: len(self) // 2], path, *args, **kwargs)
        raise KeyboardInterrupt

    monkeypatch.setattr(pd.DataFrame, "to_csv", half_then_interrupt)
    with pytest.raises(KeyboardInterrupt):
        write_table(pd.DataFrame({"x": range(100)}), out)
    assert out.read_text() == "previous\n" and entries(tmp_path) == {"scores.csv"}


def test_write_table_cleans_stale_temporaries_and_writes_iso_timestamps(tmp_path):
    (tmp_path / ".scores.csv.tmp-deadbeef").write_text("left by a killed run")
    (tmp_path / ".other.csv.tmp-deadbeef").write_text("not ours")
    frame = pd.DataFrame({"timestamp": pd.date_range("2024-01-01", periods=2, freq="1h", tz="UTC"), "v": [1.0, 2.0]})
    write_table(frame, tmp_path / "scores.csv")
    assert entries(tmp_path) == {"scores.csv", ".other.csv.tmp-deadbeef"}
    assert (tmp_path / "scores.csv").read_text().splitlines()[1] == "2024-01-01T00:00:00+00:00,1.0"
    write_table(frame, tmp_path / "scores.parquet")
    assert pd.read_parquet(tmp_path / "scores.parquet")["v"].tolist() == [1.0, 2.0]


@pytest.mark.parametrize(
    "name, message",
    [
        ("scores.txt", "must end in .csv or .parquet"),
        ("missing/scores.csv", "does not exist"),
        ("adir.csv", "is a directory"),
    ],
)
def test_write_table_refuses_bad_targets(tmp_path, name, message):
    (tmp_path / "adir.csv").mkdir()
    with pytest.raises(DataError, match=message):
        write_table(pd.DataFrame({"x": [1]}), tmp_path / name)
    assert entries(tmp_path) == {"adir.csv"}


def test_every_load_series_call_shown_to_users_reads_the_bundled_data(monkeypatch):
    """The README's and the package docstring's examples load the bundled files as written."""
    import anomaly

    root = Path(__file__).resolve().parent.parent
    shown = (root / "README.md").read_text() + anomaly.__doc__
    calls = sorted(set(re.findall(r"load_series\(\"data/[^)]*\)", shown)))
    assert any("machine_temperature" in c for c in calls) and any("sample_multivariate" in c for c in calls)
    monkeypatch.chdir(root)
    for call in calls:
        assert len(eval(call, {"load_series": load_series})) > 1000, call  # noqa: S307 (our own docs)


@pytest.mark.parametrize(
    ("freq", "unit", "days"),
    [("MS", "month", "28 to 31"), ("ME", "month", "28 to 31"), ("QS", "quarter", "90 to 92"), ("YS", "year", "365 to 366")],
)
def test_calendar_months_quarters_and_years_are_refused_not_blended(csv, freq, unit, days):
    """A 30.4-day grid would move every monthly timestamp and average neighbouring months together."""
    idx = pd.date_range("2000-01-01", periods=60, freq=freq)
    path = csv(pd.DataFrame({"timestamp": idx.strftime("%Y-%m-%d"), "value": np.arange(60.0)}), f"{unit}.csv")
    with pytest.raises(DataError, match=rf"{unit}.csv: the timestamps are a calendar {unit} apart \({days} days\)"):
        load_series(path)


@pytest.mark.parametrize("freq", ["7D", "1D", "1h"])
def test_fixed_steps_keep_every_row_and_value(csv, freq):
    idx = pd.date_range("2000-01-03", periods=60, freq=freq)
    frame = load_series(csv(pd.DataFrame({"timestamp": idx.strftime("%Y-%m-%d %H:%M"), "value": np.arange(60.0)})))
    assert frame.index.equals(pd.DatetimeIndex(idx, name="timestamp")) and frame["value"].tolist() == list(range(60))


def test_zone_name_of_every_kind_of_time_zone():
    import datetime as dt
    import zoneinfo

    import dateutil.tz

    from anomaly.io import zone_name

    assert zone_name(zoneinfo.ZoneInfo("Europe/Berlin")) == "Europe/Berlin"
    assert zone_name(dateutil.tz.gettz("America/New_York")) == "America/New_York"
    assert zone_name(pd.Timestamp("2024-01-01", tz="dateutil/Asia/Tokyo").tz) == "Asia/Tokyo"
    assert zone_name(dt.UTC) == "UTC"
    assert zone_name(pd.Timestamp("2024-01-01 00:00+01:00").tz) == "UTC+01:00"
    assert zone_name(dateutil.tz.tzutc()) == "UTC" and zone_name(dateutil.tz.tzoffset(None, -5400)) == "UTC-01:30"
    with pytest.raises(DataError, match="machine's local zone"):
        zone_name(dateutil.tz.tzlocal())


def test_a_saved_row_index_and_an_empty_column_are_skipped_with_a_warning(tmp_path, caplog):
    """DataFrame.to_csv writes its row numbers under a blank header ("Unnamed: 0"); they were learned
    as a sensor. A column never read (all blank) is skipped too, unless it is asked for by name."""
    path = tmp_path / "saved.csv"
    series(50).assign(c=np.nan).to_csv(path)  # index=True, pandas' default
    with caplog.at_level(logging.WARNING, logger="anomaly"):
        frame = load_series(path)
    assert list(frame.columns) == ["a", "b"]
    assert "saved.csv: skipping column(s) without a header (a saved row index?): 'Unnamed: 0'; with no values: 'c'" in caplog.text
    with pytest.raises(DataError, match="saved.csv: column 'c' has no values"):
        load_series(path, columns=["a", "c"])
    only = tmp_path / "only.csv"
    series(50)[["timestamp"]].assign(c="").to_csv(only)
    with pytest.raises(
        DataError, match=r"no numeric sensor column besides 'timestamp' \(without a header .*'Unnamed: 0'; with no values: 'c'\)"
    ):
        load_series(only)


@pytest.mark.parametrize("unit, per_second", [("s", 1), ("ms", 10**3), ("us", 10**6), ("ns", 10**9)])
def test_unix_times_are_read_in_the_unit_their_size_names(tmp_path, unit, per_second):
    stamps = 1_700_000_000 + 60 * np.arange(50)
    path = tmp_path / "epoch.csv"
    series(50).assign(timestamp=stamps * per_second).to_csv(path, index=False)
    frame = load_series(path)
    assert frame.index[0] == pd.Timestamp("2023-11-14 22:13:20", tz="UTC") and frame.index.freq == pd.Timedelta("1min")
    assert len(frame) == 50


def test_numbers_that_are_not_times_are_refused_and_digit_dates_still_read(tmp_path):
    path = tmp_path / "counter.csv"
    series(50).assign(timestamp=np.arange(50)).to_csv(path, index=False)
    with pytest.raises(DataError, match=r"counter.csv: column 'timestamp' holds numbers \(0\.\.\.\), not times"):
        load_series(path)
    days = tmp_path / "days.csv"
    series(50).assign(timestamp=[int(d.strftime("%Y%m%d")) for d in pd.date_range("2024-01-01", periods=50)]).to_csv(
        days, index=False
    )
    assert load_series(days).index[-1] == pd.Timestamp("2024-02-19")


def test_the_timestamp_column_is_guessed_by_name_and_content():
    from anomaly.io import guess_timestamp_column

    stamps = pd.date_range("2024-01-01", periods=30, freq="1min")
    frame = pd.DataFrame({"response_time": np.linspace(1, 2, 30), "host_load": 1.0, "when": stamps.astype(str)})
    assert guess_timestamp_column(frame) == "when"  # 'response_time' is named like one, but holds no times
    assert guess_timestamp_column(frame.assign(date=stamps.astype(str))) == "date"
    assert guess_timestamp_column(frame.assign(when=1_700_000_000 + 60 * np.arange(30))) == "when"  # Unix times
    assert guess_timestamp_column(frame[["response_time", "host_load"]]) == "response_time"  # none: the first


def test_rows_left_out_at_the_edges_are_said_with_the_sensor_to_blame(csv, caplog):
    raw = series()
    raw["c"] = 1.0 + 0.1 * np.sin(np.arange(len(raw)))
    raw.loc[:2, "c"] = np.nan  # a sensor that starts reporting three rows late
    raw.loc[len(raw) - 1, "a"] = np.nan  # and one that stops a row early
    with caplog.at_level(logging.WARNING, logger="anomaly"):
        frame = load_series(csv(raw))
    assert len(frame) == len(raw) - 4 and frame.index[0] == pd.Timestamp(raw["timestamp"][3])
    assert f"{csv(raw)}: left out the first 3 and the last 1 row(s), where 'a', 'c' have no value" in caplog.text


def test_offsets_written_as_hours_alone_are_read_across_a_dst_change(tmp_path):
    path = tmp_path / "pg.csv"  # PostgreSQL's text form of timestamptz: +01, then +02 after the clocks change
    path.write_text("timestamp,a\n2024-03-31 00:00:00+01,0\n2024-03-31 01:00:00+01,1\n2024-03-31 03:00:00+02,2\n")
    frame = load_series(path)
    assert frame.index.tolist() == list(pd.date_range("2024-03-30 23:00", periods=3, freq="h", tz="UTC"))
    assert frame["a"].tolist() == [0.0, 1.0, 2.0]


@pytest.mark.parametrize("header", ["timestamp,temp,temp ", "timestamp,temp,temp"])
def test_two_columns_of_one_name_are_refused_in_one_line(tmp_path, header):
    path = tmp_path / "d.csv"  # pandas would call the second `temp.1`, a sensor nobody named
    path.write_text(f"{header}\n2024-01-01 00:00,1,2\n2024-01-01 00:01,1,2\n")
    with pytest.raises(DataError, match=re.escape(f"{path}: two columns are named 'temp' (spaces around names ignored)")):
        load_series(path)


def test_a_delimiter_ending_every_data_line_does_not_shift_the_columns(tmp_path):
    path = tmp_path / "d.csv"
    path.write_text("timestamp;temp;pressure\n2024-01-01 00:00;20,5;1013;\n2024-01-01 00:01;20,7;1012;\n")
    frame = load_series(path)
    assert frame.columns.tolist() == ["temp", "pressure"] and frame["temp"].tolist() == [20.5, 20.7]


def test_quoted_names_holding_commas_do_not_decide_the_delimiter(tmp_path):
    path = tmp_path / "d.csv"  # as a German spreadsheet saves it: ; between fields, decimal commas
    path.write_text('timestamp;"Druck, bar";"Fluss, l/min"\n2024-01-01 00:00;1,5;20,25\n2024-01-01 00:01;1,6;20,5\n')
    frame = load_series(path)
    assert frame.columns.tolist() == ["Druck, bar", "Fluss, l/min"] and frame["Fluss, l/min"].tolist() == [20.25, 20.5]


def test_write_table_refuses_a_name_too_long_in_one_line(tmp_path):
    out = tmp_path / ("s" * 250 + ".csv")  # fits the file system's limit; its temporary name does not
    with pytest.raises(DataError, match=r": cannot write \(File name too long\)$"):
        write_table(pd.DataFrame({"x": range(3)}), out)
    assert entries(tmp_path) == set()


def test_lines_longer_than_the_header_are_refused_not_cut(tmp_path):
    path = tmp_path / "d.csv"  # a value past the header's last column would be lost
    path.write_text("timestamp,temp\n2024-01-01 00:00,20.5,7\n2024-01-01 00:01,20.7,8\n")
    with pytest.raises(DataError, match=re.escape(f"{path}: some lines hold more fields than the header")):
        load_series(path)


def test_write_tables_writes_all_or_none(tmp_path, monkeypatch):
    first, second = tmp_path / "scores.csv", tmp_path / "events.csv"
    first.write_text("previous\n")
    original = pd.DataFrame.to_csv

    def full_disk_on_the_second(self, path, *args, **kwargs):
        if ".events.csv.tmp-" in str(path):
            raise OSError(28, "No space left on device")
        return original(self, path, *args, **kwargs)

    monkeypatch.setattr(pd.DataFrame, "to_csv", full_disk_on_the_second)
    with pytest.raises(DataError, match=rf"^{re.escape(str(second))}: cannot write \(No space left on device\)$"):
        write_tables([(pd.DataFrame({"x": [1]}), first), (pd.DataFrame({"y": [2]}), second)])
    assert first.read_text() == "previous\n" and entries(tmp_path) == {"scores.csv"}
    monkeypatch.setattr(pd.DataFrame, "to_csv", original)
    assert write_tables([(pd.DataFrame({"x": [1]}), first), (pd.DataFrame({"y": [2]}), second)]) == [first, second]
    assert first.read_text() == "x\n1\n" and second.read_text() == "y\n2\n"


def test_errors_name_the_file_line_after_blank_lines_and_quoted_line_breaks(tmp_path):
    path = tmp_path / "d.csv"
    lines = [
        "timestamp,temp,note",  # line 1
        '2024-01-01 00:00,20.5, "checked,',  # lines 2-4: one row, its note (after a space) over three lines
        "still",
        'all fine"',
        "",  # line 5: blank, skipped
        "2024-01-01 00:01,20.6,",  # line 6
        "   ",  # line 7: blank, skipped
        "2024-01-01 00:02,oops,",  # line 8
        "2024-01-01 00:03,20.8,",
    ]
    path.write_text("\n".join(lines) + "\n")
    with pytest.raises(DataError, match=re.escape(f"{path}: column 'temp', line 8: non-numeric value 'oops'")):
        load_series(path)
    path.write_text("\n".join(lines).replace("oops", "20.7").replace("00:03", "soon") + "\n")
    with pytest.raises(DataError, match=re.escape(f"{path}: line 9: ")):
        load_series(path)
    # A frame not read from that file (an upload cleaned under its name) is not looked up by the name.
    upload = pd.DataFrame({"timestamp": [f"2024-01-01 00:0{i}" for i in range(3)], "temp": ["20.5", "20.6", "oops"]})
    with pytest.raises(DataError, match=re.escape(f"{path}: column 'temp', line 4: non-numeric value 'oops'")):
        clean_frame(upload, str(path))


def test_missing_value_codes_are_missing_with_a_warning_counting_them(csv, caplog):
    raw = series()
    raw.loc[[10, 20], "a"] = -9999
    raw.loc[30, "b"] = 9.9e37
    with caplog.at_level(logging.WARNING, logger="anomaly"):
        frame = load_series(csv(raw), missing_values=(-9999.0, 9.9e37))
    assert "3 cell(s) equal to a missing-value code treated as missing (a 2, b 1)" in caplog.text
    pd.testing.assert_frame_equal(frame, load_series(csv(raw.replace([-9999, 9.9e37], np.nan), "empty.csv")))
    assert load_series(csv(raw))["a"].iloc[10] == -9999  # a code is a reading unless named
    with pytest.raises(DataError, match="column 'a' has no values"):
        load_series(csv(raw.assign(a=-9999.0), "coded.csv"), missing_values=(-9999.0,))
    narrow = series().set_index("timestamp").astype("float32")  # a logger's float32 Parquet holds float32(9.9e37)
    narrow.iloc[[30, 60], 0] = [9.9e37, -9999.9]
    narrow.reset_index().to_parquet(csv(raw).with_name("narrow.parquet"), index=False)
    with caplog.at_level(logging.WARNING, logger="anomaly"):
        load_series(csv(raw).with_name("narrow.parquet"), missing_values=(9.9e37, -9999.9))
    assert "narrow.parquet: 2 cell(s) equal to a missing-value code treated as missing (a 2)" in caplog.text


@pytest.mark.parametrize(
    "text, codes",
    [("-9999", (-9999.0,)), (" -9999, 9.9e37 ,", (-9999.0, 9.9e37)), ("none", ()), (" None ", ())],
)
def test_missing_value_codes_read_numbers_or_none(text, codes):
    assert missing_value_codes(text) == codes


@pytest.mark.parametrize(
    "text, message",
    [
        (",", "expected comma-separated numbers or none, not ','"),
        ("", "expected comma-separated numbers or none, not ''"),
        ("-9999, NA", "expected comma-separated numbers, not '-9999, NA'"),
        ("nan", "expected comma-separated finite numbers, not 'nan'"),
    ],
)
def test_missing_value_codes_refuse_what_is_no_list_of_numbers(text, message):
    with pytest.raises(DataError, match=re.escape(message)):
        missing_value_codes(text)
