"""The ``anomaly`` command: train, score, evaluate, help; the model is trained by a real subprocess."""

import json

import pandas as pd
import pytest
from conftest import ROOT, make_series, run_cli, run_cli_process, write_csv

TINY_ARGS = ["--window", "8", "--units", "8", "--latent", "4", "--epochs", "2", "--batch-size", "32", "--quiet"]


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("cli")
    data = make_series(500)
    data.iloc[450:455, 0] += 6  # a spike to find
    csv = write_csv(data, tmp / "sensors.csv")
    model = tmp / "model"
    # a logger's code saved with the model: its commands read the code as missing unless told otherwise
    result = run_cli_process(
        "train", csv, "--model", model, "--normal-end", "2024-01-01 06:00", "--missing-values", "-9999", *TINY_ARGS
    )
    assert result.returncode == 0, result.stderr
    return tmp, csv, model, result


def test_a_real_process_prints_only_its_own_lines(trained):
    """TensorFlow's C++ start-up lines ignore TF_CPP_MIN_LOG_LEVEL; a user must not see them (the
    in-process runner of the other tests cannot: TensorFlow is imported long before)."""
    tmp, csv, model, result = trained
    assert result.stderr == "" and result.stdout.startswith("saved model to")
    scored = run_cli_process("score", csv, "--model", model, "--engine", "tensorflow", "--out", tmp / "real.csv")
    assert scored.returncode == 0 and scored.stderr == "", scored.stderr
    assert scored.stdout.startswith("scored 500 rows")


def test_train_writes_model_dir(trained):
    tmp, csv, model, result = trained
    assert "saved model to" in result.stdout
    meta = json.loads((model / "detector.json").read_text())
    assert meta["columns"] == ["s0", "s1"] and meta["interval_seconds"] == 60
    assert meta["fingerprint"]["rows"] == 361 and meta["package_version"]
    assert meta["params"]["window"] == 8
    assert meta["reading"] == {"timestamp_col": "timestamp", "duplicates": "error", "max_gap": 3, "missing_values": [-9999.0]}
    assert "Traceback" not in result.stderr


def test_columns_option_reads_a_quoted_name_that_holds_a_comma(tmp_path):
    data = make_series(300).rename(columns={"s1": "flow, l/min"}).assign(extra=1.0)
    csv = write_csv(data, tmp_path / "sensors.csv")
    model = tmp_path / "model"
    result = run_cli("train", csv, "--model", model, "--columns", 's0, "flow, l/min"', *TINY_ARGS)
    assert result.returncode == 0, result.stderr
    assert json.loads((model / "detector.json").read_text())["columns"] == ["s0", "flow, l/min"]


def test_score_writes_scores_and_events(trained):
    tmp, csv, model, _ = trained
    out, events = tmp / "scores.csv", tmp / "events.csv"
    result = run_cli("score", csv, "--model", model, "--out", out, "--events", events)
    assert result.returncode == 0, result.stderr
    scores = pd.read_csv(out)
    assert list(scores.columns) == ["timestamp", "score", "threshold", "is_anomaly", "error_s0", "error_s1"]
    assert len(scores) == 500
    ev = pd.read_csv(events)
    assert list(ev.columns) == ["start", "end", "peak_score", "severity", "sensors"]
    assert ev["start"].str.match(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d").all()
    spike = ev[(ev["start"] <= "2024-01-01T07:34:00") & (ev["end"] >= "2024-01-01T07:30:00")]
    assert len(spike) == 1 and spike["sensors"].iloc[0].startswith("s0")


def test_score_writes_both_outputs_or_neither(trained):
    tmp, csv, model, _ = trained
    out, events = tmp / "kept-scores.csv", tmp / ("e" * 250 + ".csv")  # the events' temporary name is too long
    out.write_text("previous\n")
    result = run_cli("score", csv, "--model", model, "--out", out, "--events", events)
    assert result.returncode == 2 and result.stderr.strip().endswith("cannot write (File name too long)")
    assert out.read_text() == "previous\n" and not events.exists()


def test_a_list_of_codes_led_by_a_negative_number_is_a_value_not_an_option():
    from anomaly.cli import _joined_negative_values as joined

    assert joined(["score", "d.csv", "--missing-values", "-9999,9.9e37"]) == ["score", "d.csv", "--missing-values=-9999,9.9e37"]
    assert joined(["--missing-val", "-.5,-1"]) == ["--missing-values=-.5,-1"]  # argparse's abbreviations too
    assert joined(["--min-length", "-1", "--missing-values", "--out"]) == ["--min-length", "-1", "--missing-values", "--out"]


def test_missing_value_codes_score_as_empty_cells(trained):
    tmp, csv, model, _ = trained
    data = pd.read_csv(csv)
    data.loc[200, "s1"] = -9999.0  # the logger's code for "no reading"
    write_csv(data, tmp / "coded.csv")
    write_csv(data.assign(s1=data["s1"].where(data.index != 200)), tmp / "empty.csv")
    coded = run_cli("score", tmp / "coded.csv", "--model", model, "--out", tmp / "c.csv")  # the model's code
    assert coded.returncode == 0, coded.stderr
    assert "1 cell(s) equal to a missing-value code treated as missing (s1 1)" in coded.stderr
    empty = run_cli("score", tmp / "empty.csv", "--model", model, "--out", tmp / "e.csv")
    assert empty.returncode == 0, empty.stderr
    pd.testing.assert_frame_equal(pd.read_csv(tmp / "c.csv"), pd.read_csv(tmp / "e.csv"))
    read = run_cli("score", tmp / "coded.csv", "--model", model, "--missing-values", "none", "--out", tmp / "r.csv")
    assert read.returncode == 0 and "missing-value code" not in read.stderr, read.stderr
    scores = pd.read_csv(tmp / "r.csv")  # -9999 read as a reading: the worst row of the series
    assert scores["error_s1"].idxmax() in range(200 - 8, 200 + 8) and scores["is_anomaly"].iloc[200]


def test_score_parquet_and_threshold_override(trained):
    tmp, csv, model, _ = trained
    out = tmp / "scores.parquet"
    result = run_cli("score", csv, "--model", model, "--out", out, "--threshold", "1e9")
    assert result.returncode == 0, result.stderr
    scores = pd.read_parquet(out)
    assert (scores["threshold"] == 1e9).all() and not scores["is_anomaly"].any()
    assert "0 anomalous rows in 0 event(s)" in result.stdout


def test_evaluate_prints_metrics(trained):
    tmp, csv, model, _ = trained
    labels = tmp / "labels.json"
    labels.write_text(json.dumps({"sensors.csv": [["2024-01-01 07:28", "2024-01-01 07:40"]]}))
    result = run_cli("evaluate", csv, "--model", model, "--labels", labels, "--json")
    assert result.returncode == 0, result.stderr
    metrics = json.loads(result.stdout)
    assert metrics["overlap_segment"]["tp"] == 1 and metrics["overlap_segment"]["fn"] == 0
    assert set(metrics["pointwise"]) >= {"precision", "recall", "f1"}
    # Orion's weighted-segment counts are seconds: the found part of the 12-minute window is at most 721 s
    ws = metrics["weighted_segment"]
    assert 0 < ws["tp"] <= 721 and ws["tp"] + ws["fn"] == 721 and 0 < ws["f1"] <= 1
    text = run_cli("evaluate", csv, "--model", model, "--labels", labels)
    assert "overlap-segment" in text.stdout and "weighted-segment (seconds)" in text.stdout and "point-wise" in text.stdout


def test_evaluate_matches_a_key_without_suffixes_and_warns_of_labels_outside_the_data(trained):
    """SMAP-style keys ('A-1') match 'A-1.test.csv'; a window the data never reaches counts as missed,
    with a warning naming it (labels for another copy or zone of the data, most often)."""
    tmp, csv, model, _ = trained
    data = tmp / "A-1.test.csv"
    data.write_bytes(csv.read_bytes())
    labels = tmp / "smap.json"
    windows = [["2024-01-01 07:28", "2024-01-01 07:40"], ["2025-06-01 00:00", "2025-06-02 00:00"]]
    labels.write_text(json.dumps({"A-1": windows, "A-2": []}))
    result = run_cli("evaluate", data, "--model", model, "--labels", labels, "--json")
    assert result.returncode == 0, result.stderr
    metrics = json.loads(result.stdout)["overlap_segment"]
    assert (metrics["tp"], metrics["fn"]) == (1, 1)
    assert (
        f"WARNING: {labels}: 1 of 2 labelled window(s) lie outside {data} (2024-01-01 00:00:00 to "
        "2024-01-01 08:19:00), the first at 2025-06-01 00:00:00; counted as missed"
    ) in result.stderr


def test_a_labels_file_whose_one_key_names_another_file_is_read_with_a_warning(tmp_path, caplog):
    from anomaly.cli import _labels_for

    labels = tmp_path / "l.json"
    for key, warned in [("pump7.csv", True), ("base", False), ("site/base.csv", False)]:
        labels.write_text(json.dumps({key: [["2024-01-01 05:00", "2024-01-01 05:15"]]}))
        caplog.clear()
        with caplog.at_level("WARNING", logger="anomaly"):
            assert len(_labels_for(str(labels), None, str(tmp_path / "base.csv"), None)) == 1
        message = f"{labels}: its one key '{key}' does not name base.csv; read as its labels (--key chooses)"
        assert (message in caplog.text) is warned


@pytest.mark.parametrize("command", ["train", "score", "evaluate"])
def test_help_has_examples(command):
    result = run_cli(command, "--help")
    assert result.returncode == 0 and "examples:" in result.stdout


def test_missing_model_dir_is_one_line_error(trained, tmp_path):
    _, csv, _, _ = trained
    result = run_cli("score", csv, "--model", tmp_path / "nope")
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [f"error: {tmp_path / 'nope'}: model directory not found"]


def test_machine_temperature_demo_with_the_defaults(tmp_path):
    """The demo (`make run`) as a user gets it: CLI defaults, trained before the first labelled window.

    Measured: 3 of the 4 failures found (the third is invisible in this model's error) and 3 false
    alarms, with seeds 0, 1 and 2 (issue 13 asks for at least 3 found and at most 3 false alarms).
    With a span of 20 rows, before it grew with the stride, seed 0 gave 4 false alarms. The defaults
    are chosen on the benchmarks, not on this file (docs/benchmarks.md).
    """
    data = ROOT / "data" / "machine_temperature_system_failure.csv"
    model = tmp_path / "demo"
    makefile = (ROOT / "Makefile").read_text()
    assert '--model $(DEMO_MODEL) --duplicates mean \\\n\t\t--normal-end "2013-12-10 06:20"\n' in makefile
    train = run_cli("train", data, "--model", model, "--duplicates", "mean", "--normal-end", "2013-12-10 06:20", "--quiet")
    assert train.returncode == 0, train.stderr
    result = run_cli(
        "evaluate",
        data,
        "--model",
        model,
        "--labels",
        ROOT / "data" / "machine_temperature_labels.json",
        "--duplicates",
        "mean",
        "--json",
    )
    assert result.returncode == 0, result.stderr
    seg = json.loads(result.stdout)["overlap_segment"]
    assert seg["tp"] >= 3 and seg["fp"] <= 3, seg


def help_examples() -> list[list[str]]:
    """Every ``anomaly ...`` line of every command's ``--help`` examples, split as a shell would."""
    import argparse
    import shlex

    from anomaly.cli import build_parser

    commands = next(a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction))
    lines = []
    for sub in commands.choices.values():
        text = (sub.epilog or "").replace("\\\n", " ")
        lines += [shlex.split(line, comments=True) for line in text.splitlines() if line.strip().startswith("anomaly ")]
    return lines


def test_every_help_example_parses_and_reads_the_bundled_data_it_names(monkeypatch):
    """The examples that name the bundled data read it with their own options (the machine
    temperature file needs --duplicates mean); every example parses."""
    from anomaly.cli import build_parser
    from anomaly.loading import ReadOptions, load_data

    monkeypatch.chdir(ROOT)
    examples = help_examples()
    assert len(examples) >= 20 and {e[1] for e in examples} >= {"train", "score", "evaluate", "embed", "export-onnx", "dashboard"}
    read = 0
    for example in examples:
        args = build_parser().parse_args(example[1:])
        if getattr(args, "data", None) and (ROOT / args.data).is_file():
            assert len(load_data(args.data, ReadOptions.of(args))) > 1000, example
            read += 1
        if getattr(args, "labels", None) and args.data.startswith("data/"):
            assert (ROOT / args.labels).is_file(), example
    assert read == 4  # train, score, evaluate and embed on the bundled machine temperature
