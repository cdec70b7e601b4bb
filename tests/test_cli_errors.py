"""Every bad input through the CLI (``conftest.run_cli``): exit code 2, one line on stderr naming
the file (and the column or row), no traceback, and nothing written. Inputs the tool handles by documented rules
(other delimiters, inf, unsorted rows, time zones, gaps, extra columns, ...) are checked to work.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from conftest import cli_env, run_cli
from reliability_support import REPO, assert_one_line_error, entries, series, train_tiny, write_csv

from anomaly.io import clean_frame

TRAIN = ["--window", "8", "--units", "8", "--latent", "4", "--epochs", "1", "--quiet"]


@pytest.fixture(scope="module")
def model(tmp_path_factory) -> Path:
    return train_tiny(tmp_path_factory.mktemp("shared") / "model")


@pytest.fixture(scope="module")
def baseline(model, tmp_path_factory) -> pd.DataFrame:
    """Scores of the clean series, to compare handled inputs with."""
    d = tmp_path_factory.mktemp("baseline")
    data = write_csv(series(), d / "data.csv")
    proc = run_cli("score", data, "--model", model, "--out", d / "scores.csv")
    assert proc.returncode == 0, proc.stderr
    return pd.read_csv(d / "scores.csv")


def train_fails(tmp_path: Path, data: Path, *fragments: str, extra=()) -> str:
    """``anomaly train`` on bad data: one-line error, exit 2, no model directory and no leftovers."""
    before = entries(tmp_path)
    proc = run_cli("train", data, "--model", tmp_path / "model", *TRAIN, *extra)
    line = assert_one_line_error(proc, str(data), *fragments)
    assert entries(tmp_path) == before, "something was written"
    return line


def score_fails(tmp_path: Path, data: Path, model: Path, *fragments: str, code: int = 2, extra: tuple = ()) -> str:
    before = entries(tmp_path)
    proc = run_cli("score", data, "--model", model, "--out", tmp_path / "scores.csv", "--events", tmp_path / "events.csv", *extra)
    line = assert_one_line_error(proc, *fragments, code=code)
    assert entries(tmp_path) == before, "an output file appeared"
    return line


def score_ok(tmp_path: Path, data: Path, model: Path, *extra) -> tuple[pd.DataFrame, str]:
    out = tmp_path / "scores.csv"
    proc = run_cli("score", data, "--model", model, "--out", out, *extra)
    assert proc.returncode == 0, proc.stderr
    assert "Traceback" not in proc.stderr and "error" not in proc.stderr.lower()
    return pd.read_csv(out), proc.stderr


# -- unreadable files ---------------------------------------------------------------------------
def test_empty_file(tmp_path):
    data = tmp_path / "empty.csv"
    data.write_bytes(b"")
    train_fails(tmp_path, data, "file is empty")


def test_header_only(tmp_path):
    data = tmp_path / "header.csv"
    data.write_text("timestamp,a,b\n")
    train_fails(tmp_path, data, "no data rows")


def test_binary_garbage(tmp_path):
    data = tmp_path / "garbage.csv"
    data.write_bytes(bytes(np.random.default_rng(1).integers(0, 256, 4000, dtype=np.uint8)))
    train_fails(tmp_path, data, "not a CSV text file")


def test_non_utf8_text(tmp_path):
    data = tmp_path / "latin1.csv"
    text = "timestamp,temp\u00e9rature\n" + "".join(f"2024-01-01 00:{m:02d}:00,{m}.5\n" for m in range(50))
    data.write_bytes(text.encode("latin-1"))
    train_fails(tmp_path, data, "not UTF-8", "0xe9")


def test_missing_file(tmp_path):
    train_fails(tmp_path, tmp_path / "nope.csv", "file not found")


def test_broken_parquet(tmp_path):
    data = tmp_path / "broken.parquet"
    data.write_bytes(b"PAR1" + b"\x01" * 100)
    train_fails(tmp_path, data, "not a readable Parquet file")


# -- delimiters ------------------------------------------------------------------------------
def test_semicolon_delimiter_is_detected_from_the_header(tmp_path, model, baseline):
    # TAB and | are detected the same way (tests/test_io.py checks all three in process).
    data = write_csv(series(), tmp_path / "data.csv", sep=";")
    scores, _ = score_ok(tmp_path, data, model)
    pd.testing.assert_frame_equal(scores, baseline)


def test_one_column_file_without_numeric_data(tmp_path):
    data = tmp_path / "one.csv"
    data.write_text("timestamp\n" + "".join(f"2024-01-01 00:{m:02d}:00\n" for m in range(50)))
    train_fails(tmp_path, data, "no numeric sensor column besides 'timestamp'")


def test_space_separated_file_is_one_column_and_refused(tmp_path):
    frame = series(50)
    data = tmp_path / "spaces.csv"
    data.write_text("timestamp a b\n" + "".join(f"{r.timestamp.replace(' ', 'T')} {r.a} {r.b}\n" for r in frame.itertuples()))
    train_fails(tmp_path, data, "no timestamp column 'timestamp'", "--timestamp-col")


# -- bad cells ---------------------------------------------------------------------------------
def test_non_numeric_cell_names_column_and_line(tmp_path):
    frame = series().astype({"a": object})
    frame.loc[57, "a"] = "oops"
    data = write_csv(frame, tmp_path / "data.csv")
    train_fails(tmp_path, data, "column 'a'", "line 59", "'oops'")


def test_no_numeric_column(tmp_path):
    frame = series(50)[["timestamp"]].assign(name=[f"pump{i}" for i in range(50)])
    data = write_csv(frame, tmp_path / "data.csv")
    train_fails(tmp_path, data, "no numeric sensor column", "'name'")


def test_missing_timestamp_names_line(tmp_path):
    frame = series()
    frame.loc[10, "timestamp"] = ""
    data = write_csv(frame, tmp_path / "data.csv")
    train_fails(tmp_path, data, "line 12", "missing timestamp", "'timestamp'")


def test_unparseable_timestamp_names_line_and_value(tmp_path):
    frame = series()
    frame.loc[10, "timestamp"] = "half past ten"
    data = write_csv(frame, tmp_path / "data.csv")
    train_fails(tmp_path, data, "line 12", "cannot parse timestamp 'half past ten'", "'timestamp'")


def test_timestamp_column_not_found(tmp_path):
    data = write_csv(series().rename(columns={"timestamp": "time"}), tmp_path / "data.csv")
    train_fails(tmp_path, data, "no timestamp column 'timestamp'", "time")


def test_all_nan_column_asked_for_by_name(tmp_path):
    # Not asked for, it is skipped with a warning (tests/test_io.py).
    data = write_csv(series().assign(c=np.nan), tmp_path / "data.csv")
    train_fails(tmp_path, data, "column 'c' has no values", extra=("--columns", "a,c"))


def test_inf_is_treated_as_missing(tmp_path, model, baseline):
    frame = series()
    frame.loc[200, "a"] = np.inf
    scores, stderr = score_ok(tmp_path, write_csv(frame, tmp_path / "data.csv"), model)
    assert "1 infinite value(s) treated as missing" in stderr
    assert len(scores) == 400 and scores["score"].notna().all()  # one point: interpolated like a short gap


def test_huge_values_are_a_clear_error_without_warning_spam(tmp_path):
    frame = series()
    frame.loc[30, "a"] = 1e308
    data = write_csv(frame, tmp_path / "data.csv")
    train_fails(tmp_path, data, "column 'a'", "too large")


def test_huge_value_when_scoring_names_column_and_time(tmp_path, model):
    frame = series()
    frame.loc[30, "a"] = 1e308
    data = write_csv(frame, tmp_path / "data.csv")
    score_fails(tmp_path, data, model, str(data), "column 'a'", "2024-01-01 00:30:00", "too large")


# -- timestamps --------------------------------------------------------------------------------
def test_duplicate_timestamps_are_an_error_by_default(tmp_path):
    frame = series()
    frame.loc[20, "timestamp"] = frame.loc[19, "timestamp"]
    data = write_csv(frame, tmp_path / "data.csv")
    train_fails(tmp_path, data, "duplicate timestamp 2024-01-01 00:19:00", "--duplicates mean")


def test_duplicates_mean_averages_them(tmp_path, model):
    frame = series()
    extra = frame.iloc[[100]].assign(a=frame.loc[100, "a"] + 1.0)
    data = write_csv(pd.concat([frame, extra]).sort_values("timestamp", kind="stable"), tmp_path / "data.csv")
    scores, _ = score_ok(tmp_path, data, model, "--duplicates", "mean")
    assert len(scores) == 400 and scores["timestamp"].is_unique


def test_unsorted_rows_are_sorted_with_a_warning(tmp_path, model, baseline):
    frame = series().sample(frac=1.0, random_state=3)
    scores, stderr = score_ok(tmp_path, write_csv(frame, tmp_path / "data.csv"), model)
    assert "not in time order; sorted them" in stderr
    pd.testing.assert_frame_equal(scores, baseline)


def test_dst_transitions_and_mixed_offsets_are_converted_to_utc(tmp_path, model):
    # Local Berlin time across the autumn change (02:00-03:00 happens twice) in two offset spellings.
    index = pd.date_range("2024-10-27 00:00", periods=400, freq="1min", tz="UTC")
    local = [
        t.tz_convert("Europe/Berlin").isoformat() if i % 2 else t.tz_convert("Asia/Kolkata").isoformat()
        for i, t in enumerate(index)
    ]
    frame = series().assign(timestamp=local)
    scores, _ = score_ok(tmp_path, write_csv(frame, tmp_path / "data.csv"), model)
    assert list(pd.to_datetime(scores["timestamp"])) == list(index)
    assert scores["timestamp"].iloc[0] == "2024-10-27T00:00:00+00:00"


def test_naive_mixed_with_aware_timestamps_is_an_error(tmp_path):
    frame = series(tz="Europe/Berlin")
    frame["timestamp"] = [t.replace(" ", "T") for t in frame["timestamp"]]
    frame.loc[5, "timestamp"] = "2024-01-01 00:05:00"
    data = write_csv(frame, tmp_path / "data.csv")
    train_fails(tmp_path, data, "line 7", "'2024-01-01 00:05:00'", "no time zone")


def test_irregular_sampling_is_resampled_to_the_median_interval(tmp_path, model):
    frame = series()
    jitter = np.random.default_rng(5).integers(-20, 20, size=400)
    frame["timestamp"] = [str(pd.Timestamp(t) + pd.Timedelta(seconds=int(j))) for t, j in zip(frame["timestamp"], jitter)]
    scores, _ = score_ok(tmp_path, write_csv(frame, tmp_path / "data.csv"), model)
    steps = pd.to_datetime(scores["timestamp"]).diff().dropna().unique()
    assert list(steps) == [pd.Timedelta("1min")]


def test_data_coarser_than_the_model_is_refused_and_finer_data_averaged(tmp_path, model):
    """A 1-minute model on 5-minute readings once said "no stretch without gaps of a window" after a
    warning; it names the two steps. 30-second readings are averaged into minutes, with a warning."""
    coarse = write_csv(series(200, freq="5min"), tmp_path / "coarse.csv")
    score_fails(tmp_path, coarse, model, "coarse.csv: readings are 5min apart, the model's step is 1min")
    fine = series(800, freq="30s")
    scores, err = score_ok(tmp_path, write_csv(fine, tmp_path / "fine.csv"), model)
    assert "readings are 30s apart; averaged into the model's step of 1min" in err
    assert len(scores) == 400
    averaged = clean_frame(fine, "fine.csv", interval="1min", interval_of="the model")
    np.testing.assert_allclose(averaged["a"], fine["a"].groupby(np.arange(800) // 2).mean())
    gappy = series(6).drop(index=[2, 3, 4])  # three rows, steps of 1 and 4 minutes (a median of 2.5): on the grid
    assert len(clean_frame(gappy, "tail.csv", interval="1min", interval_of="the model")) == 6


def test_long_gap_is_a_break_no_window_spans(tmp_path, model):
    frame = series().drop(index=range(150, 200))  # 50 missing minutes: a break (max gap 3)
    frame = frame.drop(index=[300, 301])  # 2 missing minutes: interpolated
    data = write_csv(frame, tmp_path / "data.csv")
    scores, _ = score_ok(tmp_path, data, model)
    t = pd.to_datetime(scores["timestamp"])
    assert len(scores) == 400
    inside = (t >= "2024-01-01 02:30") & (t < "2024-01-01 03:20")
    assert scores.loc[inside, "score"].isna().all() and not scores.loc[inside, "is_anomaly"].any()
    assert scores.loc[~inside, "score"].notna().all()
    summary = run_cli("score", data, "--model", model).stdout  # it counted the break's rows as scored
    assert "scored 350 rows (2024-01-01 00:00:00 .. 2024-01-01 06:39:00; 50 rows in gaps have no score);" in summary


def test_series_shorter_than_a_window(tmp_path, model):
    data = write_csv(series(5), tmp_path / "data.csv")
    score_fails(tmp_path, data, model, str(data), "no complete window", "8 rows")


def test_too_few_normal_windows(tmp_path):
    data = write_csv(series(30), tmp_path / "data.csv")
    train_fails(tmp_path, data, "too few normal windows")


def test_constant_sensor_is_an_error_on_request(tmp_path):
    data = write_csv(series().assign(b=2.5), tmp_path / "data.csv")
    train_fails(tmp_path, data, "sensor 'b' is constant", "--on-constant keep", extra=("--on-constant", "error"))


def test_constant_sensor_kept_by_default_with_a_warning(tmp_path):
    data = write_csv(series().assign(b=2.5), tmp_path / "data.csv")
    proc = run_cli("train", data, "--model", tmp_path / "model", *TRAIN)
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr.splitlines() == [
        "WARNING: sensor 'b' is constant in the normal period: kept unscaled, so any "
        "change in it scores as anomalous (drop it with --columns, or refuse it with "
        "--on-constant error)"
    ]
    assert json.loads((tmp_path / "model" / "detector.json").read_text())["columns"] == ["a", "b"]


# -- columns versus the model's ------------------------------------------------------------------
def test_extra_and_reordered_columns_are_fine(tmp_path, model, baseline):
    frame = series()
    frame = frame.assign(extra=np.arange(400.0))[["b", "extra", "timestamp", "a"]]
    scores, _ = score_ok(tmp_path, write_csv(frame, tmp_path / "data.csv"), model)
    pd.testing.assert_frame_equal(scores, baseline)


def test_missing_model_column_is_named(tmp_path, model):
    data = write_csv(series().drop(columns="b"), tmp_path / "data.csv")
    score_fails(tmp_path, data, model, str(data), "'b'", "model columns: a, b")


def test_renamed_model_column_is_named(tmp_path, model):
    data = write_csv(series().rename(columns={"a": "A"}), tmp_path / "data.csv")
    score_fails(tmp_path, data, model, str(data), "'a'", "model columns: a, b")


# -- broken model directories --------------------------------------------------------------------
@pytest.fixture
def copy(model, tmp_path) -> Path:
    """A private copy of the shared model, to break, and a clean data file beside it."""
    write_csv(series(), tmp_path / "data.csv")
    return Path(shutil.copytree(model, tmp_path / "model"))


def _edit_json(directory: Path, change) -> None:
    path = directory / "detector.json"
    meta = json.loads(path.read_text())
    change(meta)
    path.write_text(json.dumps(meta))


def test_model_directory_missing(tmp_path):
    data = write_csv(series(), tmp_path / "data.csv")
    score_fails(tmp_path, data, tmp_path / "no_model", "no_model", "model directory not found")


KERAS = ("--engine", "tensorflow")  # the ONNX export (the default engine) never reads model.keras


@pytest.mark.parametrize("name, extra", [("model.keras", KERAS), ("model.onnx", ())])
def test_model_file_truncated(tmp_path, copy, name, extra):
    file = copy / name
    file.write_bytes(file.read_bytes()[: file.stat().st_size // 2])
    score_fails(tmp_path, tmp_path / "data.csv", copy, name, "checksum does not match", extra=extra)


def test_model_keras_corrupted_with_matching_checksum(tmp_path, copy):
    from anomaly.artifacts import sha256_file

    keras_file = copy / "model.keras"
    keras_file.write_bytes(b"PK\x03\x04" + b"\x00garbage" * 500)
    _edit_json(copy, lambda m: m.update(model_sha256=sha256_file(keras_file)))
    score_fails(tmp_path, tmp_path / "data.csv", copy, "model.keras", "cannot load the Keras model", extra=KERAS)


def test_model_json_not_json(tmp_path, copy):
    (copy / "detector.json").write_text('{"format": "lstm-anomaly-model", ')
    score_fails(tmp_path, tmp_path / "data.csv", copy, "detector.json", "corrupt JSON")


@pytest.mark.parametrize(
    "change, field",
    [
        (lambda m: m["scaler"].update(scale=[-1.0, 1.0]), "'scaler.scale'"),  # invalid value
        (lambda m: m.update(columns="a,b"), "'columns'"),  # wrong type
        (lambda m: m.pop("thresholds"), "'thresholds'"),  # removed key
        (lambda m: m["params"].update(window="eight"), "invalid params"),  # wrong type inside params
        (lambda m: m.update(interval_seconds=True), "'interval_seconds'"),  # a bool is not a number
    ],
    ids=["invalid-value", "wrong-type", "removed-key", "bad-param", "bool-interval"],
)
def test_model_json_tampered(tmp_path, copy, change, field):
    _edit_json(copy, change)
    score_fails(tmp_path, tmp_path / "data.csv", copy, "detector.json", field)


def test_model_from_a_newer_version(tmp_path, copy):
    _edit_json(copy, lambda m: m.update(format_version=m["format_version"] + 1, package_version="99.0"))
    score_fails(tmp_path, tmp_path / "data.csv", copy, "detector.json", "newer version", "upgrade")


def test_model_with_a_lambda_layer_is_refused(tmp_path, copy):
    from reliability_support import TINY

    from anomaly.artifacts import sha256_file
    from anomaly.tfkeras import keras

    inputs = keras.Input(shape=(TINY["window"], 2))
    outputs = keras.layers.Lambda(lambda x: x * 2.0)(inputs)
    keras.Model(inputs, outputs).save(copy / "model.keras")
    _edit_json(copy, lambda m: m.update(model_sha256=sha256_file(copy / "model.keras")))
    score_fails(tmp_path, tmp_path / "data.csv", copy, "model.keras", "cannot load the Keras model", "Lambda", extra=KERAS)


def test_a_forced_seasonal_profile_needs_four_periods_of_normal_data(tmp_path):
    data = write_csv(series(), tmp_path / "data.csv")
    train_fails(
        tmp_path,
        data,
        "seasonal=week",
        "of column 'a' cover 0 week(s) at least half; a week profile needs 4",
        extra=("--seasonal", "week"),
    )


def test_an_unknown_time_zone_is_refused_in_one_line(tmp_path):
    data = write_csv(series(), tmp_path / "data.csv")
    before = entries(tmp_path)
    proc = run_cli("train", data, "--model", tmp_path / "model", *TRAIN, "--timezone", "Mars/Base")
    assert_one_line_error(proc, "argument --timezone: expected an IANA time zone name such as Europe/Berlin", "'Mars/Base'")
    assert entries(tmp_path) == before, "something was written"


# -- outputs, options and targets checked before any work -----------------------------------------
def test_a_bad_events_path_or_one_file_for_both_outputs_writes_nothing(tmp_path, model):
    data = write_csv(series(), tmp_path / "data.csv")
    before = entries(tmp_path)
    proc = run_cli("score", data, "--model", model, "--out", tmp_path / "s.csv", "--events", tmp_path / "nodir" / "e.csv")
    assert_one_line_error(proc, "nodir", "does not exist")
    proc = run_cli("score", data, "--model", model, "--out", tmp_path / "s.csv", "--events", tmp_path / "e.txt")
    assert_one_line_error(proc, "e.txt", "must end in .csv or .parquet")
    proc = run_cli("score", data, "--model", model, "--out", tmp_path / "x.csv", "--events", tmp_path / "." / "x.csv")
    assert_one_line_error(proc, "--out and --events name the same file")
    assert entries(tmp_path) == before, "a scores file was written by a run that failed"
    kept = data.read_bytes()
    for option in ("--out", "--events"):  # the sensor file itself: refused, not replaced by scores
        proc = run_cli("score", data, "--model", model, option, tmp_path / "." / "data.csv")
        assert_one_line_error(proc, "data.csv: is the input data file")
        assert data.read_bytes() == kept
    proc = run_cli("embed", data, "--model", model, "--out", data)
    assert_one_line_error(proc, "data.csv: is the input data file")
    assert data.read_bytes() == kept


def test_score_checks_its_event_options_as_train_does(tmp_path, model):
    data = write_csv(series(), tmp_path / "data.csv")
    # the option typed is named, not the hyperparameter behind it (min_event_length)
    proc = run_cli("score", data, "--model", model, "--min-length", "-5")
    assert_one_line_error(proc, "argument --min-length: expected an integer >= 1, not '-5'")
    assert_one_line_error(run_cli("score", data, "--model", model, "--merge-gap", "-1"), "--merge-gap: expected an integer >= 0")
    for option, bad, rule in [("--threshold", "nan", "a finite number >= 0"), ("--quantile", "1.5", "a number in (0, 1)")]:
        assert_one_line_error(
            run_cli("score", data, "--model", model, option, bad), f"argument {option}: expected {rule}, not '{bad}'"
        )
    proc = run_cli("train", data, "--model", tmp_path / "m", "--normal-end", "garbage")
    assert_one_line_error(proc, "argument --normal-end: cannot parse timestamp 'garbage'")
    proc = run_cli("train", data, "--model", tmp_path / "m", "--latent", "0")
    assert_one_line_error(proc, "argument --latent: expected an integer >= 1, not '0'")
    proc = run_cli("score", data, "--model", model, "--max-gap", "-1")  # argparse's own error: one line too
    assert_one_line_error(proc, "--max-gap: expected an integer >= 0, not '-1'", "(see 'anomaly score --help')")
    proc = run_cli("score", data, "--model", model, "--missing-values=-9999,NA")
    assert_one_line_error(proc, "--missing-values: expected comma-separated numbers, not '-9999,NA'")
    for empty in (",", " "):  # no list, as the dashboard's field refuses it
        proc = run_cli("score", data, "--model", model, f"--missing-values={empty}")
        assert_one_line_error(proc, f"--missing-values: expected comma-separated numbers or none, not '{empty.strip()}'")
    proc = run_cli("score", data, "--model", model, "--threshold", "1", "--quantile", "0.99")  # which one? neither
    assert_one_line_error(proc, "argument --quantile: not allowed with argument --threshold")
    assert_one_line_error(run_cli(), "the following arguments are required: COMMAND", "(see 'anomaly --help')")


def test_a_reader_that_stops_early_is_not_an_error(tmp_path, model):
    """`anomaly score ... | head -0`: stdout's reader is gone before the summary line; exit 141 (as a
    tool killed by SIGPIPE), no error line, instead of "unexpected BrokenPipeError" and exit 1."""
    import subprocess
    import sys

    data = write_csv(series(), tmp_path / "data.csv")
    proc = subprocess.Popen(
        [sys.executable, "-m", "anomaly", "score", str(data), "--model", str(model)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        cwd=REPO,
        env=cli_env(),
    )
    proc.stdout.close()  # the reader stops at once
    _, err = proc.communicate(timeout=600)
    assert proc.returncode == 141, err
    assert "error" not in err.decode()


def test_normal_period_options_zero_or_two_ways_are_refused(tmp_path):
    data = write_csv(series(), tmp_path / "data.csv")
    before = entries(tmp_path)
    proc = run_cli("train", data, "--model", tmp_path / "m", *TRAIN, "--normal-frac", "0")
    assert_one_line_error(proc, "--normal-frac must be in (0, 1], not 0")
    proc = run_cli("train", data, "--model", tmp_path / "m", *TRAIN, "--normal-end", "2024-01-01 02:00", "--normal-frac", "0.9")
    assert_one_line_error(proc, "--normal-frac and --normal-start/--normal-end both give the normal period; use one")
    proc = run_cli("train", data, "--model", tmp_path / "m", *TRAIN, "--normal-data", data, "--normal-frac", "0.9")
    assert_one_line_error(proc, "--normal-data and --normal-frac both give the normal period")
    assert entries(tmp_path) == before


def test_normal_data_must_hold_the_sensors_of_data_at_its_step(tmp_path):
    """The model learns --normal-data and will score DATA: a sensor DATA has and the normal file
    lacks, or a coarser step, is refused naming the normal file (it was learned as given)."""
    data = write_csv(series(), tmp_path / "data.csv")
    lacking = write_csv(series()[["timestamp", "a"]], tmp_path / "normal_a.csv")
    coarse = write_csv(series(freq="5min"), tmp_path / "normal_5min.csv")
    before = entries(tmp_path)
    proc = run_cli("train", data, "--model", tmp_path / "m", *TRAIN, "--normal-data", lacking)
    assert_one_line_error(proc, "normal_a.csv: no column 'b' (columns: timestamp, a)")
    proc = run_cli("train", data, "--model", tmp_path / "m", *TRAIN, "--normal-data", coarse)
    assert_one_line_error(proc, f"normal_5min.csv: readings are 5min apart, {data}'s step is 1min; filling in")
    assert entries(tmp_path) == before
    extra = write_csv(series().assign(c=1.0), tmp_path / "normal_abc.csv")
    proc = run_cli("train", data, "--model", tmp_path / "m", *TRAIN, "--normal-data", extra)
    assert proc.returncode == 0, proc.stderr
    assert json.loads((tmp_path / "m" / "detector.json").read_text())["columns"] == ["a", "b"]


def test_a_normal_period_past_the_end_of_the_data_trains_with_a_warning(tmp_path):
    data = write_csv(series(), tmp_path / "data.csv")
    proc = run_cli("train", data, "--model", tmp_path / "m", *TRAIN, "--normal-end", "2030-01-01")
    assert proc.returncode == 0, proc.stderr
    assert "the normal period covers all 400 rows" in proc.stderr


def test_a_model_path_that_is_not_a_model_is_refused_before_the_data_is_read(tmp_path):
    target = tmp_path / "notes"
    target.mkdir()
    (target / "NOTES.md").write_text("mine")
    proc = run_cli("train", tmp_path / "missing.csv", "--model", target, *TRAIN)
    assert_one_line_error(proc, "notes", "exists and is not a model directory")  # not "missing.csv: file not found"
    assert entries(target) == {"NOTES.md"}


def test_a_model_folder_holding_other_files_is_not_replaced_by_train_or_export_onnx(tmp_path, model):
    """Saving replaces the model folder whole: the training data kept in it, a scores file or a notes
    folder would go with the old model. Refused in one line, before any training, everything kept."""
    target = tmp_path / "m"
    shutil.copytree(model, target)
    data = write_csv(series(), target / "train.csv")
    (target / "archive").mkdir()
    before = {p.name: p.read_bytes() for p in target.iterdir() if p.is_file()}
    proc = run_cli("train", data, "--model", target, *TRAIN)
    assert_one_line_error(proc, "m", "holds archive/, train.csv beside the model", "move them out first")
    assert "epoch" not in proc.stderr.lower()  # refused before fitting
    assert {p.name: p.read_bytes() for p in target.iterdir() if p.is_file()} == before and (target / "archive").is_dir()
    (target / "archive").rmdir()
    (target / "model.onnx").unlink()
    proc = run_cli("export-onnx", target)
    assert_one_line_error(proc, "m", "holds train.csv beside the model")
    assert entries(target) == {"detector.json", "model.keras", "train.csv"}
    (target / "train.csv").unlink()
    assert run_cli("export-onnx", target).returncode == 0  # the model's own files alone: replaced as before
    assert entries(target) == {"detector.json", "model.keras", "model.onnx"}


def test_a_model_folder_that_cannot_be_written_is_refused_before_training(tmp_path, monkeypatch):
    """`--model data.csv/m` or a read-only folder: the save failed after the whole fit, with
    "unexpected FileExistsError" (or PermissionError) and exit 1."""
    data = write_csv(series(), tmp_path / "data.csv")
    proc = run_cli("train", data, "--model", data / "m", *TRAIN)
    assert_one_line_error(proc, f"{data / 'm'}: cannot save a model there: {data} is a file, not a folder")
    assert "epoch" not in proc.stderr.lower() and entries(tmp_path) == {"data.csv"}
    locked = tmp_path / "locked"
    locked.mkdir()
    real_access = os.access
    # The tests run as root, whom no permission stops: the folder is made read-only to os.access alone.
    monkeypatch.setattr(os, "access", lambda path, mode: Path(path) != locked and real_access(path, mode))
    proc = run_cli("train", data, "--model", locked / "sub" / "m", *TRAIN)
    assert_one_line_error(proc, f"{locked / 'sub' / 'm'}: cannot save a model there: no permission to write in {locked}")
    assert entries(locked) == set()


def test_decimal_commas_in_a_semicolon_file_read_as_numbers(tmp_path, model, baseline):
    data = write_csv(series(), tmp_path / "data.csv", sep=";", decimal=",")
    assert "0,0" in data.read_text() or ",0" in data.read_text()
    scores, _ = score_ok(tmp_path, data, model)
    pd.testing.assert_frame_equal(scores, baseline)


def test_errors_found_late_still_name_the_file(tmp_path, model):
    one = tmp_path / "one.csv"
    one.write_text("timestamp,a,b\n2024-01-01 00:00:00,1,2\n")
    train_fails(tmp_path, one, "one timestamp only")
    short = write_csv(series(5), tmp_path / "short.csv")
    proc = run_cli("embed", short, "--model", model, "--out", tmp_path / "v.csv")
    assert_one_line_error(proc, str(short), "no complete window to embed: the series has 5 rows")
    proc = run_cli("score", short, "--model", model, "--db", tmp_path / "r.db")  # a scheduled run waits for more rows
    assert proc.returncode == 0 and f"{short}: no complete window" in proc.stderr and "waiting for more rows" in proc.stderr
    proc = run_cli("score", short, "--model", model, "--db", one)  # a CSV given as the database: bad input
    assert proc.returncode == 2 and f"{one}: not an SQLite database file" in proc.stderr.splitlines()[-1]
