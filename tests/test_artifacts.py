"""The model directory: atomic saves, defensive loading, no unsafe deserialisation anywhere."""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import sys
from copy import copy as shallow
from pathlib import Path

import numpy as np
import pytest
from reliability_support import REPO, TINY, entries, series

from anomaly import artifacts
from anomaly.artifacts import META_FILE, MODEL_FILE, ONNX_FILE, read_metadata, sha256_file
from anomaly.errors import ModelError
from anomaly.io import clean_frame


@pytest.fixture(scope="module")
def fitted(tmp_path_factory):
    """The shared tiny detector, fitted once, and its saved directory."""
    from anomaly.detector import LSTMAutoencoderDetector

    detector = LSTMAutoencoderDetector(**TINY).fit(clean_frame(series()))
    directory = detector.save(tmp_path_factory.mktemp("shared") / "model")
    return detector, directory


@pytest.fixture
def copy(fitted, tmp_path) -> Path:
    return Path(shutil.copytree(fitted[1], tmp_path / "model"))


def digests(directory: Path) -> dict:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(directory.iterdir())}


def edit(directory: Path, change, *, raw: str | None = None) -> None:
    path = directory / META_FILE
    if raw is not None:
        path.write_text(raw)
        return
    meta = json.loads(path.read_text())
    change(meta)
    path.write_text(json.dumps(meta))  # allow_nan: a tampered file may hold NaN


def one_line_model_error(directory: Path, *fragments: str) -> str:
    from anomaly.detector import LSTMAutoencoderDetector

    with pytest.raises(ModelError) as info:
        LSTMAutoencoderDetector.load(directory)
    message = str(info.value)
    assert "\n" not in message and len(message) < 600, message
    for fragment in fragments:
        assert fragment in message, f"{fragment!r} not in {message!r}"
    return message


# -- round trip ----------------------------------------------------------------------------------
def test_save_load_gives_identical_scores(fitted):
    from anomaly.detector import LSTMAutoencoderDetector

    detector, directory = fitted
    frame = clean_frame(series(seed=1))
    again = LSTMAutoencoderDetector.load(directory)
    np.testing.assert_array_equal(again.score(frame)["score"].to_numpy(), detector.score(frame)["score"].to_numpy())
    assert entries(directory) == {MODEL_FILE, META_FILE, ONNX_FILE}  # the ONNX export by default


# -- atomic saves --------------------------------------------------------------------------------
def test_how_the_training_data_was_read_is_saved_and_kept(fitted, tmp_path):
    assert fitted[0].reading_ is None and read_metadata(fitted[1])["reading"] is None  # fitted in Python: unknown
    detector = shallow(fitted[0])  # the shared detector stays as fitted
    loaded = type(detector).load(detector.save(tmp_path / "read", reading=READ))
    assert detector.reading_ == READ and loaded.reading_ == READ
    assert read_metadata(tmp_path / "read")["format_version"] == artifacts.FORMAT_VERSION
    assert read_metadata(detector.save(tmp_path / "twice"))["reading"] == READ  # saved again: kept
    unnamed = {**READ, "timestamp_col": ""}  # a Parquet file's timestamp column may have an empty name
    assert type(detector).load(detector.save(tmp_path / "unnamed", reading=unnamed)).reading_ == unnamed
    again = loaded.save(tmp_path / "again")  # as export-onnx rewrites a model: reading=None keeps the model's
    assert read_metadata(again)["reading"] == READ
    assert loaded.fit(clean_frame(series())).reading_ is None  # refitted on data read elsewhere


def test_a_reading_that_loading_would_refuse_is_refused_before_saving(fitted, tmp_path):
    from anomaly.errors import ConfigError

    detector = shallow(fitted[0])
    for bad in ({"missing_values": [-9999]}, {**READ, "max_gap": -1}, {**READ, "duplicates": "first"}, {**READ, "max_gap": True}):
        with pytest.raises(ConfigError, match="^reading must give timestamp_col"):
            detector.save(tmp_path / "refused", reading=bad)
    assert detector.reading_ is None
    detector.reading_ = {"timestamp_col": "time", "missing_values": [-9999]}  # set by hand: checked as well
    with pytest.raises(ConfigError, match="^reading must give timestamp_col"):
        detector.save(tmp_path / "refused")
    assert not (tmp_path / "refused").exists()
    numpy = {**READ, "max_gap": np.int64(2), "missing_values": np.array([-9999.0, 9.9e37])}
    assert read_metadata(detector.save(tmp_path / "numpy", reading=numpy))["reading"] == READ  # as JSON holds them
    assert (
        read_metadata(detector.save(tmp_path / "tupled", reading={**READ, "missing_values": (-9999.0, 9.9e37)}))["reading"]
        == READ
    )


def test_save_over_a_previous_model_swaps_it_in_whole(fitted, copy):
    detector, _ = fitted
    old_inode = (copy / MODEL_FILE).stat().st_ino
    assert ONNX_FILE in entries(copy)
    detector.save(copy, onnx=False)
    assert entries(copy) == {MODEL_FILE, META_FILE}  # the old directory went away as a whole, its ONNX file too
    # A new file, not the old one rewritten (its bytes may match: the zip's clock has 2 s resolution).
    assert (copy / MODEL_FILE).stat().st_ino != old_inode
    assert read_metadata(copy)["model_sha256"] == sha256_file(copy / MODEL_FILE)
    assert entries(copy.parent) == {"model"}  # no .model.tmp-* or .model.old-* left


def test_interrupted_save_keeps_the_previous_model(fitted, copy, monkeypatch):
    detector, _ = fitted
    before = digests(copy)

    def half_written(path, *args, **kwargs):
        Path(path).write_bytes(b"PK\x03\x04 half a model")
        raise KeyboardInterrupt

    monkeypatch.setattr(detector.model_, "save", half_written)
    with pytest.raises(KeyboardInterrupt):
        detector.save(copy)
    assert digests(copy) == before
    assert entries(copy.parent) == {"model"}
    read_metadata(copy)


def test_stale_temporary_directories_are_removed_at_next_save(fitted, copy):
    detector, _ = fitted
    for name in (".model.tmp-deadbeef", ".model.old-cafebabe"):
        (copy.parent / name).mkdir()
        (copy.parent / name / MODEL_FILE).write_bytes(b"left by a save that was killed")
    (copy.parent / ".other.tmp-1234").mkdir()  # another model's: not ours to delete
    (copy.parent / f".model.tmp-{os.getppid()}-0123abcd").mkdir()  # a save still running in a live process
    detector.save(copy)
    assert entries(copy.parent) == {"model", ".other.tmp-1234", f".model.tmp-{os.getppid()}-0123abcd"}


def test_without_renameat2_two_renames_still_leave_a_complete_model(fitted, copy, monkeypatch):
    detector, _ = fitted
    monkeypatch.setattr(artifacts, "_exchange", lambda a, b: False)
    detector.save(copy)
    assert entries(copy.parent) == {"model"}
    read_metadata(copy)


def test_a_save_killed_between_the_two_renames_is_recovered(fitted, copy):
    detector, _ = fitted
    before = digests(copy)
    copy.rename(copy.parent / ".model.old-0badf00d")  # the state a kill there would leave
    (copy.parent / ".model.tmp-0badf00d").mkdir()
    artifacts._recover(copy)
    assert digests(copy) == before and entries(copy.parent) == {"model"}


def test_exchange_swaps_two_directories_atomically(tmp_path):
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    (tmp_path / "a" / "from_a").touch()
    if sys.platform.startswith("linux"):
        assert artifacts._exchange(tmp_path / "a", tmp_path / "b")
        assert entries(tmp_path / "b") == {"from_a"} and entries(tmp_path / "a") == set()


def test_save_refuses_to_replace_a_directory_that_is_not_a_model(fitted, tmp_path):
    detector, _ = fitted
    target = tmp_path / "results"
    target.mkdir()
    (target / "notes.txt").write_text("precious")
    with pytest.raises(ModelError, match="not a model directory"):
        detector.save(target)
    assert (target / "notes.txt").read_text() == "precious" and entries(tmp_path) == {"results"}


def test_save_refuses_a_model_directory_holding_other_files_and_names_them(fitted, tmp_path):
    detector, _ = fitted
    target = detector.save(tmp_path / "m")
    for name in ("a.csv", "b.csv", "c.csv", "d.csv"):
        (target / name).write_text("kept")
    saved, before = (target / META_FILE).read_bytes(), entries(target)
    with pytest.raises(ModelError, match=r"holds a\.csv, b\.csv, c\.csv and 1 more beside the model"):
        detector.save(target)
    assert entries(target) == before and {MODEL_FILE, META_FILE, "d.csv"} <= before
    assert (target / META_FILE).read_bytes() == saved and entries(tmp_path) == {"m"}


# -- defensive loading ---------------------------------------------------------------------------
def test_lambda_layer_is_refused_and_never_run(copy, tmp_path):
    from anomaly.tfkeras import keras

    marker = tmp_path / "ran"
    inputs = keras.Input(shape=(TINY["window"], 2))
    # The path is a constant in the lambda's code (closures over objects cannot be serialised).
    touch = eval(f"lambda x: x * 2.0 + (open({str(marker)!r}, 'w').close() or 0.0)")  # noqa: S307
    outputs = keras.layers.Lambda(touch)(inputs)
    marker.unlink(missing_ok=True)  # building the model called the function once
    keras.Model(inputs, outputs).save(copy / MODEL_FILE)
    edit(copy, lambda m: m.update(model_sha256=sha256_file(copy / MODEL_FILE)))
    one_line_model_error(copy, MODEL_FILE, "cannot load the Keras model", "Lambda")
    assert not marker.exists()


def test_truncated_keras_file(copy):
    data = (copy / MODEL_FILE).read_bytes()
    (copy / MODEL_FILE).write_bytes(data[: len(data) // 2])
    one_line_model_error(copy, "checksum does not match")


def test_keras_file_missing(copy):
    (copy / MODEL_FILE).unlink()
    one_line_model_error(copy, f"{MODEL_FILE} is missing")


def test_model_with_other_shapes_than_its_metadata(copy):
    edit(copy, lambda m: m["params"].update(window=9))
    one_line_model_error(copy, "do not match the metadata", "(None, 9, 2)")


READ = {"timestamp_col": "time", "duplicates": "mean", "max_gap": 2, "missing_values": [-9999.0, 9.9e37]}
TAMPERED = {
    "nan-mean": (lambda m: m["scaler"].update(mean=[float("nan"), 0.0]), "'scaler.mean'"),
    "huge-int": (lambda m: m["scaler"].update(mean=[10**400, 0.0]), "'scaler.mean'"),
    "short-scale": (lambda m: m["scaler"].update(scale=[1.0]), "'scaler.scale'"),
    "zero-error-ref": (lambda m: m.update(error_ref=[0.0, 1.0]), "'error_ref'"),
    "ranges-without-mixture": (lambda m: m.update(part_ranges={"reconstruction": [[0.0, 0.0], [1.0, 1.0]]}), "'part_ranges'"),
    "duplicate-columns": (lambda m: m.update(columns=["a", "a"]), "'columns'"),
    "no-columns": (lambda m: m.pop("columns"), "'columns'"),
    "empty-normal-scores": (lambda m: m.update(normal_scores=[]), "'normal_scores'"),
    "zero-interval": (lambda m: m.update(interval_seconds=0), "'interval_seconds'"),
    "huge-interval": (lambda m: m.update(interval_seconds=1e300), "'interval_seconds'"),
    "string-interval": (lambda m: m.update(interval_seconds="60"), "'interval_seconds'"),
    "bad-timezone": (lambda m: m.update(timezone="Mars/Olympus_Mons"), "'timezone'"),
    "negative-span": (lambda m: m.update(smoothing_span=-3), "'smoothing_span'"),
    "missing-span": (lambda m: m.pop("smoothing_span"), "'smoothing_span'"),  # required since format 4
    "float-span": (lambda m: m.update(smoothing_span=2.5), "'smoothing_span'"),
    "negative-threshold": (lambda m: m["thresholds"]["values"].update(quantile=-1.0), "'thresholds.values'"),
    "unknown-rule": (lambda m: m["thresholds"].update(rule="magic"), "'thresholds'"),
    "list-rule": (lambda m: m["thresholds"].update(rule=["quantile"]), "'thresholds'"),
    "sha-not-hex": (lambda m: m.update(model_sha256="x" * 64), "'model_sha256'"),
    "fingerprint-rows": (lambda m: m["fingerprint"].update(rows="many"), "'fingerprint'"),
    "unknown-param": (lambda m: m["params"].update(run_this="rm -rf /"), "invalid params"),
    "negative-window": (lambda m: m["params"].update(window=-8), "invalid params"),
    "bad-quantile": (lambda m: m["params"].update(quantile="high"), "invalid params"),
    "params-list": (lambda m: m.update(params=[1, 2]), "'params'"),
    "reading-list": (lambda m: m.update(reading=["timestamp"]), "'reading'"),
    "reading-key-missing": (lambda m: m.update(reading={k: v for k, v in READ.items() if k != "max_gap"}), "'reading'"),
    "reading-extra-key": (lambda m: m.update(reading={**READ, "sep": ";"}), "'reading'"),
    "reading-duplicates": (lambda m: m.update(reading={**READ, "duplicates": "first"}), "'reading'"),
    "reading-negative-gap": (lambda m: m.update(reading={**READ, "max_gap": -1}), "'reading'"),
    "reading-bool-gap": (lambda m: m.update(reading={**READ, "max_gap": True}), "'reading'"),
    "reading-number-timestamp": (lambda m: m.update(reading={**READ, "timestamp_col": 0}), "'reading'"),
    "reading-text-code": (lambda m: m.update(reading={**READ, "missing_values": ["NA"]}), "'reading'"),
    "reading-code-list": (lambda m: m.update(reading={**READ, "missing_values": -9999}), "'reading'"),
    "other-format": (lambda m: m.update(format="something-else"), "not a lstm-anomaly-model file"),
    "version-string": (lambda m: m.update(format_version="1"), "format_version"),
    "older-version": (lambda m: m.update(format_version=0), "too old"),
    "newer-version": (lambda m: m.update(format_version=99), "newer version"),
}


@pytest.mark.parametrize("name", list(TAMPERED))
def test_tampered_metadata_is_refused_in_one_line(copy, name):
    change, fragment = TAMPERED[name]
    edit(copy, change)
    one_line_model_error(copy, META_FILE, fragment)


@pytest.mark.parametrize(
    "raw, fragment",
    [
        ("", "corrupt JSON"),
        ("[1, 2, 3]", "not a lstm-anomaly-model file"),
        ("[" * 100_000 + "]" * 100_000, "corrupt JSON"),  # nesting deep enough to exhaust recursion
        ('{"format": "lstm-anomaly-model", "format_version": ' + "9" * 5000 + "}", "corrupt JSON"),  # int too long
        ('{"format": "lstm-anomaly-model"', "corrupt JSON"),
    ],
    ids=["empty", "list", "deep", "long-int", "cut"],
)
def test_corrupt_metadata_is_refused_in_one_line(copy, raw, fragment):
    edit(copy, None, raw=raw)
    one_line_model_error(copy, fragment)


def test_metadata_that_is_a_directory(copy):
    (copy / META_FILE).unlink()
    (copy / META_FILE).mkdir()
    one_line_model_error(copy, "not a model directory")


def test_model_path_is_a_file(tmp_path):
    (tmp_path / "model").write_text("not a directory")
    one_line_model_error(tmp_path / "model", "not a directory")


# -- nothing unsafe in the code ------------------------------------------------------------------
UNSAFE = re.compile(
    r"^\s*(import|from)\s+(pickle|cPickle|_pickle|joblib|dill|cloudpickle|shelve|marshal)\b"
    r"|\b(read_pickle|to_pickle|allow_pickle\s*=\s*True|enable_unsafe_deserialization|safe_mode\s*=\s*False)\b",
    re.MULTILINE,
)


def test_no_pickle_joblib_or_unsafe_loading_in_the_package_or_dashboard():
    sources = [p for folder in ("anomaly", "dashboard") for p in sorted((REPO / folder).rglob("*.py"))]
    assert any(p.name == "artifacts.py" for p in sources)  # the scan sees the package
    hits = [
        f"{p.relative_to(REPO)}:{text[: m.start()].count(chr(10)) + 1}: {m.group(0).strip()}"
        for p in sources
        for text in [p.read_text(encoding="utf-8")]
        for m in UNSAFE.finditer(text)
    ]
    assert hits == []


def test_the_unsafe_pattern_catches_what_it_should():
    for line in (
        "import pickle",
        "from joblib import load",
        "import dill as d",
        "np.load(f, allow_pickle=True)",
        "keras.config.enable_unsafe_deserialization()",
        "load_model(p, safe_mode=False)",
        "pd.read_pickle(p)",
    ):
        assert UNSAFE.search(line), line
    assert not UNSAFE.search("No pickle or joblib anywhere.")


def test_save_flagging_checks_then_rewrites_only_the_settings(copy):
    from anomaly.detector import LSTMAutoencoderDetector

    before = read_metadata(copy)
    LSTMAutoencoderDetector.save_flagging(copy, local_k=4.5, event_padding=7)
    after = read_metadata(copy)
    assert after["params"] == {**before["params"], "local_k": 4.5, "event_padding": 7}
    assert {k: v for k, v in after.items() if k != "params"} == {k: v for k, v in before.items() if k != "params"}
    loaded = LSTMAutoencoderDetector.load(copy)
    assert (loaded.local_k, loaded.event_padding) == (4.5, 7)
    with pytest.raises(ModelError, match="not a flagging setting: window"):
        LSTMAutoencoderDetector.save_flagging(copy, window=9)
    with pytest.raises(ModelError, match=r"invalid flagging setting \(.*local_k"):
        LSTMAutoencoderDetector.save_flagging(copy, local_k=-1.0)
    assert read_metadata(copy) == after  # a refused change writes nothing


def test_a_save_that_fails_midway_is_one_line_and_leaves_the_old_model(fitted, tmp_path, monkeypatch):
    """A full disk while the new model is written: a ModelError naming the folder, the old model
    in place, no scratch folder left."""
    from anomaly.artifacts import save_detector

    detector = fitted[0]
    target = detector.save(tmp_path / "m")
    before = {p.name: p.read_bytes() for p in target.iterdir()}

    def disk_full(path, *args, **kwargs):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(detector.model_, "save", disk_full)
    with pytest.raises(ModelError, match=r"m: cannot save the model \(No space left on device\)$"):
        save_detector(detector, target)
    assert {p.name: p.read_bytes() for p in target.iterdir()} == before and entries(tmp_path) == {"m"}
