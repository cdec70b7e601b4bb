"""Every page of the dashboard through Streamlit's AppTest, on a tiny model and a generated series.

The app reads its folders from the environment (see dash_support.py), so each test sees only the temp
models/ and data/ folders; tests that write (save a threshold, train) get their own copy.
"""

from __future__ import annotations

import copy
import io
import json
import os
import shutil
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from dash_support import APP, TINY, csv_bytes, dash_dirs, dash_env, fill_store, make_series  # noqa: F401 (fixtures)
from streamlit.testing.v1 import AppTest

from anomaly import load_series
from anomaly.detector import LSTMAutoencoderDetector

TIMEOUT = 180


def app(**state) -> AppTest:
    at = AppTest.from_file(APP, default_timeout=TIMEOUT)
    for key, value in state.items():
        at.session_state[key] = value
    return at.run()


def page(at: AppTest, name: str) -> AppTest:
    return at.switch_page(f"views/{name}.py").run()


def ok(at: AppTest) -> None:
    assert not at.exception, [e.value for e in at.exception]
    assert not at.error, [e.value for e in at.error]


def metric(at: AppTest, label: str) -> str:
    values = [m.value for m in at.metric if m.label == label]
    assert values, f"no metric {label!r} in {[m.label for m in at.metric]}"
    return values[0]


def array(value) -> np.ndarray:
    """A Plotly JSON array: a plain list, or the typed-array form ``{"dtype", "bdata"}`` (base64)."""
    if isinstance(value, dict) and "bdata" in value:
        import base64

        return np.frombuffer(base64.b64decode(value["bdata"]), dtype=value["dtype"])
    return np.asarray(value)


def figure(at: AppTest, i: int = 0) -> dict:
    return json.loads(at.get("plotly_chart")[i].proto.spec)


def trace(spec: dict, name: str) -> dict:
    """The first trace called ``name`` of a Plotly figure's JSON."""
    found = [t for t in spec["data"] if t.get("name") == name]
    assert found, f"no trace {name!r} in {[t.get('name') for t in spec['data']]}"
    return found[0]


def times(values) -> pd.DatetimeIndex:
    return pd.DatetimeIndex(pd.to_datetime(list(values)))


def tuned(detector, scores: pd.DataFrame, **settings) -> tuple[pd.DataFrame, pd.DataFrame]:
    """What the dashboard must show for causal-rule settings: the package's own re-flagging, on a copy."""
    alt = copy.copy(detector).set_params(**settings)
    flagged = alt.reflag(scores)
    return flagged, alt.events(flagged)


def explanation(at: AppTest) -> str:
    texts = [m.value for m in at.markdown if "How points are flagged" in m.value]
    assert len(texts) == 1, [m.value for m in at.markdown]
    return texts[0]


def _reference(dash_dirs, name: str):
    detector = LSTMAutoencoderDetector.load(dash_dirs["models"] / name)
    frame = load_series(dash_dirs["data"] / "series.csv")
    return detector, frame, detector.score(frame, reconstruct=True)


@pytest.fixture(scope="module")
def reference(dash_dirs):
    """The tiny model's own scores of the bundled series (causal rule), computed without the app."""
    return _reference(dash_dirs, "tiny")


@pytest.fixture(scope="module")
def fixed_reference(dash_dirs):
    """The same for 'tiny_fixed': one fixed threshold, scores compared as they are (a pre-causal model)."""
    return _reference(dash_dirs, "tiny_fixed")


@pytest.fixture()
def own_models(dash_env, tmp_path, monkeypatch):
    """A private models folder holding a copy of the tiny model, for tests that write into it."""
    models = tmp_path / "models"
    shutil.copytree(dash_env["models"] / "tiny", models / "tiny")
    monkeypatch.setenv("ANOMALY_MODELS_DIR", str(models))
    return models


# -- Series -------------------------------------------------------------------------------------
def test_series_page_plots_the_bundled_data(dash_env, reference):
    detector, frame, scores = reference
    at = app()
    ok(at)
    assert at.title[0].value == "Series"
    assert at.sidebar.selectbox(key="model").value == "tiny"
    assert at.sidebar.selectbox(key="data_file").value == "series.csv"
    assert metric(at, "Points scored") == f"{int(scores['score'].notna().sum()):,}"
    assert metric(at, "Events") == str(len(detector.events(scores)))
    spec = figure(at)
    names = [t.get("name") for t in spec["data"]]
    assert names.count("original") == 2 and "score" in names and "reconstruction" not in names
    shaded = [s for s in spec["layout"].get("shapes", []) if s["type"] == "rect"]
    assert len(shaded) == len(detector.events(scores))  # one band per event down all rows
    at.toggle(key="series_recon").set_value(True).run()
    ok(at)
    assert [t.get("name") for t in figure(at)["data"]].count("reconstruction") == 2


def test_series_threshold_line_follows_the_per_row_threshold(dash_env, reference):
    """The causal rule gives every point its own threshold: the dashed line is that column, the
    flagged points are the model's flags (not ``score > one number``)."""
    detector, _, scores = reference
    limit = scores["threshold"].to_numpy()
    assert np.ptp(limit) > 0.01 and np.isfinite(limit).all()  # really per row
    at = app()
    ok(at)
    assert metric(at, "Threshold") == f"k = {detector.local_k:g}"
    assert metric(at, "Flagged points") == f"{int(scores['is_anomaly'].sum()):,}"
    spec = figure(at)
    line = trace(spec, "threshold")
    assert line["yaxis"] == trace(spec, "score")["yaxis"] == "y3"  # on the score's row, below both sensors
    assert (times(line["x"]) == scores.index).all()
    np.testing.assert_allclose(array(line["y"]).astype(float), limit, rtol=1e-12)
    assert not [a for a in spec["layout"]["annotations"] if a["text"].startswith("threshold")]  # no flat line
    flagged = scores.index[scores["is_anomaly"].to_numpy()]
    markers = [t for t in spec["data"] if t.get("name") == "flagged"]
    assert len(markers) == 2 and all((times(m["x"]) == flagged).all() for m in markers)
    assert not (scores["score"] > scores["threshold"]).to_numpy()[scores["is_anomaly"].to_numpy()].all()  # padding


def test_series_fixed_model_draws_one_flat_threshold(dash_env, fixed_reference):
    detector, _, scores = fixed_reference
    at = app(model="tiny_fixed")
    ok(at)
    t = detector.threshold_for()
    assert metric(at, "Threshold") == f"{t:.4g}"
    assert metric(at, "Events") == str(len(detector.events(scores)))
    assert metric(at, "Flagged points") == f"{int((scores['score'] > t).sum()):,}"
    spec = figure(at)
    assert "threshold" not in [tr.get("name") for tr in spec["data"]]
    lines = [s for s in spec["layout"]["shapes"] if s["type"] == "line"]
    assert [s["y0"] for s in lines] == [pytest.approx(t)]
    assert f"threshold {t:.4g}" in [a["text"] for a in spec["layout"]["annotations"]]


def test_series_time_range_narrows_what_is_drawn(dash_env, reference):
    detector, frame, scores = reference
    at = app()
    lo, hi = frame.index[100].to_pydatetime(), frame.index[199].to_pydatetime()
    at.slider(key="series_view").set_value((lo, hi)).run()
    ok(at)
    score_trace = [t for t in figure(at)["data"] if t.get("name") == "score"][0]
    assert len(score_trace["x"]) == 100
    assert pd.Timestamp(score_trace["x"][0]) == frame.index[100]
    events = detector.events(scores)
    in_view = events[(events["end"] >= frame.index[100]) & (events["start"] <= frame.index[199])]
    assert f"100 of {len(scores):,} points and {len(in_view)} of {len(events)} events in view" in at.caption[0].value
    one = frame.index[150].to_pydatetime()
    at.slider(key="series_view").set_value((one, one)).run()  # a single point: said so, not empty axes
    assert not at.exception and [w.value for w in at.warning] == [
        f"One point in this time range ({frame.index[150]:%Y-%m-%d %H:%M}): widen it to draw the series."
    ]


def test_series_bad_upload_shows_an_error_and_the_app_stays_usable(dash_env, reference):
    _, frame, scores = reference
    at = app(source_kind="Upload")
    ok(at)
    assert any("Upload a CSV" in i.value for i in at.info)
    at.sidebar.file_uploader(key="upload").set_value(("broken.csv", b"\x00\x01\x02 not text", "text/csv")).run()
    assert not at.exception
    assert [e.value for e in at.error] == ["broken.csv: binary content, not a CSV text file"]
    wrong = frame.rename(columns={"b": "c"})
    at.sidebar.file_uploader(key="upload").set_value(("wrong.csv", csv_bytes(wrong), "text/csv")).run()
    assert not at.exception
    # the CLI's and the scheduler's message (anomaly.loading), naming the upload and the column
    assert [e.value for e in at.error] == ["wrong.csv: lacks the model's column(s) 'b' (model columns: a, b)"]
    at.sidebar.file_uploader(key="upload").set_value(("good.csv", csv_bytes(frame), "text/csv")).run()
    ok(at)
    assert metric(at, "Points scored") == f"{int(scores['score'].notna().sum()):,}"
    assert len(at.get("plotly_chart")) == 1


def test_series_accepts_a_parquet_upload(dash_env, reference):
    _, frame, scores = reference
    buf = io.BytesIO()
    frame.iloc[:300].reset_index().to_parquet(buf)
    at = app(source_kind="Upload")
    at.sidebar.file_uploader(key="upload").set_value(("part.parquet", buf.getvalue(), "application/octet-stream")).run()
    ok(at)
    assert metric(at, "Points scored") == "300"


def test_reading_errors_name_the_apps_widget_not_a_command_line_option(dash_env, reference):
    _, frame, _ = reference
    doubled = pd.concat([frame.iloc[:300], frame.iloc[299:300]]).sort_index()  # one timestamp twice
    at = app(source_kind="Upload")
    at.sidebar.selectbox(key="duplicates").set_value("refuse")
    at.sidebar.file_uploader(key="upload").set_value(("dup.csv", csv_bytes(doubled), "text/csv")).run()
    assert not at.exception
    [error] = [e.value for e in at.error]
    assert "duplicate timestamp" in error and "choose “average” under “Duplicate timestamps”" in error
    assert "--duplicates" not in error


def test_missing_value_codes_in_the_sidebar_read_a_loggers_code_as_missing(dash_env, reference):
    _, frame, _ = reference
    coded = frame.iloc[:300].copy()
    coded.iloc[150, 0] = 9.9e37  # an overload code
    at = app(source_kind="Upload")
    at.sidebar.file_uploader(key="upload").set_value(("coded.csv", csv_bytes(coded), "text/csv")).run()
    assert not at.exception
    [error] = [e.value for e in at.error]
    assert "9.9e+37 is too large to score" in error and "list it under “Missing-value codes”" in error
    at.sidebar.text_input(key="missing_codes").input("-9999, nine").run()
    assert [e.value for e in at.error] == ["Missing-value codes: expected comma-separated numbers, not '-9999, nine'"]
    at.sidebar.text_input(key="missing_codes").input("-9999, 9.9e37").run()
    ok(at)
    assert any("1 cell(s) equal to a missing-value code treated as missing" in w.value for w in at.warning)
    assert metric(at, "Points scored") == "300"


def test_the_sidebar_reads_data_as_the_models_training_data_was_read(own_models, reference):
    _, frame, _ = reference
    meta = json.loads((own_models / "tiny" / "detector.json").read_text())
    meta["reading"] = {"timestamp_col": "time", "duplicates": "error", "max_gap": 3, "missing_values": [9.9e37]}
    (own_models / "tiny" / "detector.json").write_text(json.dumps(meta))  # as the Train page saves it
    coded = frame.iloc[:300].copy()
    coded.iloc[150, 0] = 9.9e37
    at = app(source_kind="Upload")
    upload = ("coded.csv", csv_bytes(coded).replace(b"timestamp", b"time", 1), "text/csv")  # the header's name
    at.sidebar.file_uploader(key="upload").set_value(upload).run()
    ok(at)  # the fields left empty: the model's timestamp column and codes
    assert at.sidebar.text_input(key="ts_col").placeholder == "time (the model's)"
    assert at.sidebar.text_input(key="missing_codes").placeholder == "9.9e+37 (the model's)"
    assert any("1 cell(s) equal to a missing-value code treated as missing" in w.value for w in at.warning)
    assert metric(at, "Points scored") == "300"
    assert at.sidebar.selectbox(key="duplicates").options[0] == "as the model: refuse"
    at.sidebar.text_input(key="missing_codes").input("none").run()
    [error] = [e.value for e in at.error]
    assert "9.9e+37 is too large to score" in error
    at.sidebar.text_input(key="missing_codes").input(",").run()  # no list: refused, as the CLI refuses it
    assert [e.value for e in at.error] == ["Missing-value codes: expected comma-separated numbers or none, not ','"]
    at.sidebar.text_input(key="missing_codes").input("").run()
    doubled = pd.concat([coded, coded.iloc[299:300]]).sort_index()  # one timestamp twice: refused, as the model reads
    upload = ("dup.csv", csv_bytes(doubled).replace(b"timestamp", b"time", 1), "text/csv")
    at.sidebar.file_uploader(key="upload").set_value(upload).run()
    [error] = [e.value for e in at.error]
    assert "duplicate timestamp" in error
    at.sidebar.selectbox(key="duplicates").set_value("average").run()
    ok(at)
    assert any("averaged 1 duplicate timestamp(s)" in w.value for w in at.warning)
    card = page(app(), "model")
    ok(card)
    said = "Timestamp column “time”; duplicate timestamps refused; gaps of up to 3 points interpolated; missing-value codes: 9.9e+37."
    assert any(c.value.startswith(said) for c in card.caption), [c.value for c in card.caption]


def test_series_from_the_scoring_database(dash_env, reference, tmp_path, monkeypatch):
    """The "Scoring database" source: a clear message while there is no database, its scores after."""
    monkeypatch.setenv("ANOMALY_DB", str(tmp_path / "results.db"))  # not created yet
    at = app(source_kind="Scoring database")
    assert not at.exception
    assert any("No results database yet" in i.value for i in at.sidebar.info)
    detector, _, scores = reference
    fill_store(tmp_path / "results.db", detector, scores)
    at = app(source_kind="Scoring database")
    assert at.sidebar.selectbox(key="db_source").value == "series.csv"
    ok(at)
    assert metric(at, "Points scored") == f"{int(scores['score'].notna().sum()):,}"
    assert metric(at, "Events") == str(len(detector.events(scores)))
    assert not at.warning  # the model that wrote them
    at.sidebar.selectbox(key="model").set_value("tiny_fixed").run()  # another model's rule on them: said so
    ok(at)
    assert [w.value for w in at.warning] == [
        "The stored scores of 'series.csv' were written by model 'tiny' (tiny), not by 'tiny_fixed': they are "
        "flagged here with 'tiny_fixed''s rule. Pick 'tiny' in the sidebar to see them as they were judged."
    ]


def test_series_sensors_follow_the_model(dash_env, tmp_path, monkeypatch):
    """Another model with other sensors: the Sensors picker selects that model's own, never none."""
    models, data = tmp_path / "models", tmp_path / "data"
    for name in ("tiny", "tiny_cd"):
        shutil.copytree(dash_env["models"] / "tiny", models / name)
    card = json.loads((models / "tiny_cd" / "detector.json").read_text())
    (models / "tiny_cd" / "detector.json").write_text(json.dumps({**card, "columns": ["c", "d"]}))  # same weights
    data.mkdir()
    frame = make_series()
    (data / "wide.csv").write_bytes(csv_bytes(frame.assign(c=frame["a"], d=frame["b"])))
    monkeypatch.setenv("ANOMALY_MODELS_DIR", str(models))
    monkeypatch.setenv("ANOMALY_DATA_DIR", str(data))
    at = app(data_file="wide.csv")
    ok(at)
    assert at.multiselect(key="series_sensors").value == ["a", "b"]
    at.sidebar.selectbox(key="model").set_value("tiny_cd").run()
    ok(at)
    assert at.multiselect(key="series_sensors").value == ["c", "d"]
    at.multiselect(key="series_sensors").set_value(["d"]).run()  # a choice among the same sensors is kept
    ok(at)
    assert at.multiselect(key="series_sensors").value == ["d"]
    at.sidebar.selectbox(key="model").set_value("tiny").run()
    ok(at)
    assert at.multiselect(key="series_sensors").value == ["a", "b"]


def drawn(at: AppTest) -> list[str]:
    """The sensors the Series chart draws: its subplot titles, the score's row left out."""
    return [a["text"] for a in figure(at)["layout"]["annotations"] if a["text"] in ("a", "b")]


def sensors_box(at: AppTest) -> list[str]:
    """What the browser's Sensors box shows after a run that draws it again (one that stopped before it,
    on an error, made the browser forget the box): the value the run sends, else the box's default."""
    box = at.multiselect(key="series_sensors").proto
    return list(box.raw_values) if box.set_value else [box.options[i] for i in box.default]


def test_series_sensors_survive_a_data_error(dash_env, tmp_path, monkeypatch):
    """A bad file or upload stops the page before the Sensors box: the choice made there is kept, and
    the chart draws what the box shows (the browser once showed an empty box, then drew one sensor)."""
    data = tmp_path / "data"
    data.mkdir()
    frame = make_series()
    (data / "series.csv").write_bytes(csv_bytes(frame))
    bad = frame.astype(object)
    bad.iloc[10, 0] = "ERR"
    (data / "zz_bad.csv").write_bytes(csv_bytes(bad))
    monkeypatch.setenv("ANOMALY_DATA_DIR", str(data))
    at = app()
    at.multiselect(key="series_sensors").set_value(["b"]).run()
    ok(at)
    assert drawn(at) == ["b"]
    at.sidebar.selectbox(key="data_file").set_value("zz_bad.csv").run()
    assert not at.exception and len(at.error) == 1 and "'ERR'" in at.error[0].value
    at.sidebar.selectbox(key="data_file").set_value("series.csv").run()
    ok(at)
    assert at.multiselect(key="series_sensors").value == ["b"] and drawn(at) == ["b"]
    assert sensors_box(at) == ["b"]  # not an empty box over a chart of the old choice
    at.sidebar.radio(key="source_kind").set_value("Upload").run()  # no file yet: the page stops early
    assert any("Upload a CSV" in i.value for i in at.info)
    for name in ("first.csv", "second.csv"):
        at.sidebar.file_uploader(key="upload").set_value((name, csv_bytes(frame.iloc[:400]), "text/csv")).run()
        ok(at)
        assert at.multiselect(key="series_sensors").value == ["b"] and drawn(at) == ["b"] and sensors_box(at) == ["b"]


def test_series_without_a_sensor_chosen_draws_the_score_alone(dash_env):
    """A cleared Sensors box once still drew the first sensor, as if it had been chosen."""
    at = app()
    at.multiselect(key="series_sensors").set_value([]).run()
    ok(at)
    spec = figure(at)
    assert drawn(at) == [] and [a["text"] for a in spec["layout"]["annotations"]] == ["anomaly score"]
    assert {t.get("name") for t in spec["data"]} >= {"score"} and "original" not in {t.get("name") for t in spec["data"]}
    assert any("No sensor chosen" in i.value for i in at.info)
    at.multiselect(key="series_sensors").set_value(["a"]).run()
    ok(at)
    assert drawn(at) == ["a"] and not any("No sensor chosen" in i.value for i in at.info)


def test_series_keeps_its_settings_across_pages(dash_env):
    at = app()
    at.multiselect(key="series_sensors").set_value(["a"])
    at.toggle(key="series_recon").set_value(True).run()
    ok(at)
    at = page(page(at, "model"), "series")
    ok(at)
    assert at.multiselect(key="series_sensors").value == ["a"] and at.toggle(key="series_recon").value
    assert drawn(at) == ["a"] and [t.get("name") for t in figure(at)["data"]].count("reconstruction") == 1


def test_loader_warnings_are_shown_on_the_page(dash_env, reference):
    """What the loader fixed in the data (logged by the package) is said on the page, also on a cached rerun."""
    _, frame, _ = reference
    part = frame.iloc[:300]
    messy = pd.concat([part.iloc[150:], part.iloc[:150], part.iloc[10:11]])  # out of order, one timestamp twice
    said = ["messy.csv: rows are not in time order; sorted them", "messy.csv: averaged 1 duplicate timestamp(s)"]
    at = app(source_kind="Upload")
    at.sidebar.file_uploader(key="upload").set_value(("messy.csv", csv_bytes(messy), "text/csv")).run()
    ok(at)
    assert sorted(w.value for w in at.warning) == sorted(said)
    assert metric(at, "Points scored") == "300"
    at.run()  # cleaned once: the warnings come from the cache
    assert sorted(w.value for w in at.warning) == sorted(said)
    at = page(at, "train")
    at.radio(key="train_origin").set_value("Upload a file").run()
    at.file_uploader(key="train_upload").set_value(("messy.csv", csv_bytes(messy), "text/csv")).run()
    ok(at)
    assert sorted(w.value for w in at.warning) == sorted(said)


def test_a_database_source_without_scores_says_why(dash_env, tmp_path, monkeypatch):
    """A source whose runs all failed has no scores: said so, not that they lack the model's columns."""
    from anomaly.store import open_store

    monkeypatch.setenv("ANOMALY_DB", str(tmp_path / "results.db"))
    with open_store(tmp_path / "results.db", create=True) as store:
        store.fail_run(store.begin_run("pump.csv", "tiny"), "pump.csv: file not found")
    at = app(source_kind="Scoring database")
    ok(at)
    assert at.sidebar.selectbox(key="db_source").value == "pump.csv"
    assert [w.value for w in at.warning] == [
        "No scores stored yet for 'pump.csv': its scoring runs wrote none (the History page lists them, with "
        "the error of each failed one)."
    ]


def test_a_bad_database_file_shows_its_error_only(dash_env, tmp_path, monkeypatch):
    db = tmp_path / "results.db"
    db.write_bytes(csv_bytes(make_series(10)))  # a CSV file given as the database
    monkeypatch.setenv("ANOMALY_DB", str(db))
    at = app(source_kind="Scoring database")
    assert not at.exception
    assert [e.value for e in at.sidebar.error] == [f"{db}: not an SQLite database file"]
    assert not at.sidebar.info
    assert [e.value for e in at.main.error] == [f"{db}: not an SQLite database file"]  # not "pick a source"
    assert not at.main.info


def test_the_main_area_says_why_there_is_no_database_source(dash_env, tmp_path, monkeypatch):
    from anomaly.store import open_store

    db = tmp_path / "results.db"
    monkeypatch.setenv("ANOMALY_DB", str(db))
    at = app(source_kind="Scoring database")
    ok(at)
    assert [i.value for i in at.main.info] == [f"No results database yet at {db}."]
    open_store(db, create=True).close()
    at.run()
    ok(at)
    assert [i.value for i in at.main.info] == ["The results database holds no scored source yet."]


def test_a_database_that_fails_mid_query_is_one_line_on_the_page(dash_env, reference, tmp_path, monkeypatch):
    """Opened fine, then a read fails (a table dropped by hand; on a server, a dropped connection)."""
    import sqlalchemy as sa

    detector, _, scores = reference
    db = tmp_path / "results.db"
    monkeypatch.setenv("ANOMALY_DB", str(db))
    fill_store(db, detector, scores)
    engine = sa.create_engine(f"sqlite:///{db}")
    with engine.begin() as conn:
        conn.exec_driver_sql("DROP TABLE feedback")
    engine.dispose()
    said = [f"database {db}: no such table: feedback"]
    at = page(app(source_kind="Scoring database"), "events")
    assert not at.exception, [e.value for e in at.exception]
    assert [e.value for e in at.error] == said
    at = page(at, "history")
    assert not at.exception, [e.value for e in at.exception]
    assert [e.value for e in at.error] == said


# -- Threshold: the causal rule -----------------------------------------------------------------
def test_threshold_page_explains_the_rule_with_the_models_numbers(dash_env, reference):
    detector, _, scores = reference
    cap = detector.flag_rule().cap
    normal_peak = copy.copy(detector).set_params(local_cap=1.0).flag_rule().cap
    at = page(app(), "threshold")
    ok(at)
    text = explanation(at)
    assert (
        f"**mean + {detector.local_k:g} × std** of the last **{detector.local_trailing:,}** scores "
        "(flagged points left out, so a long anomaly cannot raise its own bar)"
    ) in text
    assert (f"{detector.local_cap:g} × the largest held-out normal score ({normal_peak:.4g}) = **{cap:.4g}**") in text
    assert f"the next **{detector.event_padding:,}** points are flagged too" in text
    assert detector.smoothing_ == 20  # the fixture's span at stride 1
    assert "root of the mean squared reconstruction error, smoothed over about 20 points" in text
    assert metric(at, "Cap") == f"{cap:.4g}"
    assert metric(at, "Events") == str(len(detector.events(scores)))
    assert metric(at, "Flagged points") == f"{int(scores['is_anomaly'].sum()):,}"
    assert metric(at, "Threshold at the last point") == f"{scores['threshold'].iloc[-1]:.4g}"
    assert (
        at.slider(key="flag_k").value,
        at.slider(key="flag_trailing").value,
        at.slider(key="flag_cap").value,
        at.number_input(key="flag_pad").value,
        at.toggle(key="flag_exclude").value,
    ) == (6.0, 3000, 3.0, 100, True)
    assert at.button(key="flag_save").disabled and at.button(key="flag_reset").disabled
    spec = figure(at)
    np.testing.assert_allclose(array(trace(spec, "threshold")["y"]).astype(float), scores["threshold"], rtol=1e-12)
    assert "threshold (saved)" not in [t.get("name") for t in spec["data"]]  # nothing tuned yet
    assert [s["y0"] for s in spec["layout"]["shapes"] if s["type"] == "line"] == [pytest.approx(cap)]
    assert f"cap {cap:.4g}" in [a["text"] for a in spec["layout"]["annotations"]]
    assert len([s for s in spec["layout"]["shapes"] if s["type"] == "rect"]) == len(detector.events(scores))
    assert times(spec["layout"]["xaxis"]["range"]).tolist() == [scores.index[0], scores.index[-1]]  # no padding past the data


def test_moving_k_reflags_as_the_package_does_on_every_page(dash_env, reference):
    detector, frame, scores = reference
    base_flagged, base_events = tuned(detector, scores)
    flagged, events = tuned(detector, scores, local_k=2.0)
    assert (len(base_events), len(events)) == (1, 2)  # a lower k finds the weaker anomaly too
    at = page(app(), "threshold")
    at.slider(key="flag_k").set_value(2.0).run()
    ok(at)
    assert metric(at, "Events") == "2"
    assert metric(at, "Flagged points") == f"{int(flagged['is_anomaly'].sum()):,}"
    assert "mean + 2 × std" in explanation(at)
    assert not at.button(key="flag_save").disabled and not at.button(key="flag_reset").disabled
    spec = figure(at)
    np.testing.assert_allclose(array(trace(spec, "threshold")["y"]).astype(float), flagged["threshold"], rtol=1e-12)
    np.testing.assert_allclose(array(trace(spec, "threshold (saved)")["y"]).astype(float), scores["threshold"], rtol=1e-12)
    assert (times(trace(spec, "flagged")["x"]) == flagged.index[flagged["is_anomaly"].to_numpy()]).all()
    # The tried settings follow the user to the other pages until saved or reset.
    at = page(at, "series")
    assert metric(at, "Events") == "2"
    assert metric(at, "Flagged points") == f"{int(flagged['is_anomaly'].sum()):,}"
    np.testing.assert_allclose(array(trace(figure(at), "threshold")["y"]).astype(float), flagged["threshold"], rtol=1e-12)
    at = page(at, "events")
    ok(at)
    assert "(set on the Threshold page): 2 event(s)" in at.caption[0].value
    table = at.dataframe[0].value
    assert list(table["start"]) == list(events["start"]) and list(table["end"]) == list(events["end"])
    at = page(at, "embeddings")
    ends = frame.index[detector.window - 1 :]
    assert metric(at, "Windows ending on a flagged point") == f"{int(flagged['is_anomaly'].loc[ends].sum()):,}"
    at = page(at, "threshold")
    assert at.slider(key="flag_k").value == 2.0
    at.button(key="flag_reset").click().run()
    ok(at)
    assert at.slider(key="flag_k").value == 6.0
    assert metric(at, "Events") == str(len(base_events))
    assert metric(at, "Flagged points") == f"{int(base_flagged['is_anomaly'].sum()):,}"
    assert at.button(key="flag_reset").disabled


def test_a_setting_outside_the_default_range_survives_other_moves(own_models, reference):
    """A model saved with 50 trailing scores: its slider starts at 50 (the range widens to hold it); moved
    to 500 the range changes (a new widget in Streamlit), and the 500 must stay through the next move."""
    detector, _, scores = reference
    LSTMAutoencoderDetector.save_flagging(own_models / "tiny", local_trailing=50)
    at = page(app(), "threshold")
    ok(at)
    assert at.slider(key="flag_trailing").value == 50
    at.slider(key="flag_trailing").set_value(500).run()
    at.slider(key="flag_k").set_value(7.0).run()
    ok(at)
    assert (at.slider(key="flag_trailing").value, at.slider(key="flag_k").value) == (500, 7.0)
    flagged, _ = tuned(detector, scores, local_k=7.0, local_trailing=500)
    assert metric(at, "Flagged points") == f"{int(flagged['is_anomaly'].sum()):,}"


def test_fixed_threshold_sliders_follow_the_threshold_in_force(dash_env, dash_dirs):
    """Dragged to the top of its range, switched to another fixed model, or to the quantile and back:
    the slider always shows the threshold the page flags with."""
    at = page(app(model="tiny_fixed"), "threshold")
    slider = at.slider(key="thr_abs")
    slider.set_value(slider.max).run()  # above every score: dismiss every event
    ok(at)
    assert at.slider(key="thr_abs").value == pytest.approx(slider.max, abs=at.slider(key="thr_abs").step)  # its range grew
    assert metric(at, "Threshold") == f"{slider.max:.4g}" and metric(at, "Events") == "0"
    at.sidebar.selectbox(key="model").set_value("tiny_fixed_root").run()
    ok(at)
    other = LSTMAutoencoderDetector.load(dash_dirs["models"] / "tiny_fixed_root").threshold_for()
    step = at.slider(key="thr_abs").step
    assert at.slider(key="thr_abs").value == pytest.approx(other, abs=step / 2)
    assert metric(at, "Threshold") == f"{other:.4g}"
    at.radio(key="thr_mode").set_value("quantile of normal scores").run()
    at.slider(key="thr_q").set_value(0.9).run()
    at.radio(key="thr_mode").set_value("absolute value").run()
    ok(at)
    shown = float(metric(at, "Threshold"))
    assert at.slider(key="thr_abs").value == pytest.approx(shown, rel=1e-3, abs=at.slider(key="thr_abs").step / 2)


def test_every_setting_reflags_as_the_package_does(dash_env, reference):
    detector, _, scores = reference
    settings = dict(local_trailing=100, local_cap=1.0, event_padding=0, local_exclude=False)
    flagged, events = tuned(detector, scores, **settings)
    assert int(flagged["is_anomaly"].sum()) != int(scores["is_anomaly"].sum())
    at = page(app(), "threshold")
    at.slider(key="flag_trailing").set_value(100)
    at.slider(key="flag_cap").set_value(1.0)
    at.number_input(key="flag_pad").set_value(0)
    at.toggle(key="flag_exclude").set_value(False)
    at.run()
    ok(at)
    assert metric(at, "Events") == str(len(events))
    assert metric(at, "Flagged points") == f"{int(flagged['is_anomaly'].sum()):,}"
    cap = copy.copy(detector).set_params(local_cap=1.0).flag_rule().cap
    assert metric(at, "Cap") == f"{cap:.4g}"
    text = explanation(at)
    assert "of the last **100** scores (flagged points included" in text and "no padding" in text
    np.testing.assert_allclose(array(trace(figure(at), "threshold")["y"]).astype(float), flagged["threshold"], rtol=1e-12)
    assert "cap factor 3 → 1" in at.caption[-1].value and "leave flagged points out on → off" in at.caption[-1].value


def test_no_event_when_k_is_high_and_the_events_page_says_so(dash_env, reference):
    detector, _, scores = reference
    assert tuned(detector, scores, local_k=12.0)[1].empty
    at = page(app(), "threshold")
    at.slider(key="flag_k").set_value(12.0).run()
    assert metric(at, "Events") == "0" and metric(at, "Flagged points") == "0"
    at = page(at, "events")
    ok(at)
    assert [i.value for i in at.info] == [
        "No event at this threshold. On the Threshold page, lower k or the cap to see weaker anomalies."
    ]


def test_save_writes_the_settings_into_the_model_and_reset_restores(own_models, reference):
    detector, frame, scores = reference
    flagged, events = tuned(detector, scores, local_k=4.0, event_padding=20)
    at = page(app(), "threshold")
    at.slider(key="flag_k").set_value(4.0)
    at.number_input(key="flag_pad").set_value(20)
    at.run()
    assert metric(at, "Flagged points") == f"{int(flagged['is_anomaly'].sum()):,}"
    at.button(key="flag_reset").click().run()  # Reset: the model's settings and flags again
    assert (at.slider(key="flag_k").value, at.number_input(key="flag_pad").value) == (6.0, 100)
    assert metric(at, "Flagged points") == f"{int(scores['is_anomaly'].sum()):,}"
    before = json.loads((own_models / "tiny" / "detector.json").read_text())
    at.slider(key="flag_k").set_value(4.0)
    at.number_input(key="flag_pad").set_value(20)
    at.run()
    at.button(key="flag_save").click().run()
    ok(at)
    after = json.loads((own_models / "tiny" / "detector.json").read_text())
    assert after["params"] == {**before["params"], "local_k": 4.0, "event_padding": 20}
    assert {k: v for k, v in after.items() if k != "params"} == {k: v for k, v in before.items() if k != "params"}
    saved = LSTMAutoencoderDetector.load(own_models / "tiny")
    rescored = saved.score(frame)  # the saved model flags with the new settings when it scores
    assert (rescored["is_anomaly"] == flagged["is_anomaly"]).all()
    assert [s.value for s in at.success] == [
        "Saved mean + 4 std of the last 3,000 scores, capped at "
        f"{saved.flag_rule().cap:.4g}, 20 points padding into model 'tiny'."
    ]
    assert (at.slider(key="flag_k").value, at.number_input(key="flag_pad").value) == (4.0, 20)
    assert at.button(key="flag_save").disabled and at.button(key="flag_reset").disabled  # now the model's own
    assert metric(at, "Events") == str(len(events))
    assert metric(at, "Flagged points") == f"{int(flagged['is_anomaly'].sum()):,}"


def test_events_caption_gives_the_threshold_the_scores_are_compared_with(dash_env, dash_dirs):
    """A fixed model with a root score compares roots: its caption gives the root, in the units of the
    table's peak scores (it gave the plain value, above peaks that were flagged)."""
    for name in ("tiny_fixed", "tiny_fixed_root"):
        detector = LSTMAutoencoderDetector.load(dash_dirs["models"] / name)
        value = detector.threshold_for()
        at = page(app(model=name), "events")
        ok(at)
        shown = f"threshold {np.sqrt(value):.4g} = √{value:.4g}" if detector.root_score else f"threshold {value:.4g}"
        assert f"{shown} (the model’s)" in at.caption[0].value
    assert detector.root_score  # both kinds were seen


# -- Threshold: one fixed threshold (local_rule None) ----------------------------------------------
def test_moving_the_threshold_changes_the_event_count(dash_env, fixed_reference):
    detector, _, scores = fixed_reference
    at = page(app(model="tiny_fixed"), "threshold")
    ok(at)
    assert explanation(at).endswith("learned from its held-out normal scores (rule **quantile**).")
    assert metric(at, "Events") == str(len(detector.events(scores)))
    slider = at.slider(key="thr_abs")
    low = float(np.quantile(detector.normal_scores_, 0.5))
    low = round(low / slider.step) * slider.step
    slider.set_value(low).run()
    ok(at)
    expected = len(detector.events(scores, threshold=low))
    assert expected > len(detector.events(scores))
    assert metric(at, "Events") == str(expected)
    hist = figure(at)
    assert [s["x0"] for s in hist["layout"]["shapes"]][0] == pytest.approx(low)
    # The chosen threshold follows the user to the other pages until saved or reset.
    at = page(at, "series")
    assert metric(at, "Events") == str(expected)
    assert metric(at, "Flagged points") == f"{int((scores['score'] > low).sum()):,}"
    at = page(at, "threshold")
    at.button(key="thr_reset").click().run()
    assert metric(at, "Events") == str(len(detector.events(scores)))


def test_quantile_mode_sets_the_threshold_from_normal_scores(dash_env, fixed_reference):
    detector, _, scores = fixed_reference
    at = page(app(model="tiny_fixed"), "threshold")
    at.radio(key="thr_mode").set_value("quantile of normal scores").run()
    at.slider(key="thr_q").set_value(0.9).run()
    ok(at)
    value = float(np.quantile(detector.normal_scores_, 0.9))
    assert metric(at, "Threshold") == f"{value:.4g}"
    assert metric(at, "Events") == str(len(detector.events(scores, threshold=value)))
    # Shown again, the slider reads the threshold in force as the quantile it was set from, and one
    # step right raises the threshold (the slider once showed a rank count, off and not monotone).
    at.radio(key="thr_mode").set_value("absolute value").run()
    at.radio(key="thr_mode").set_value("quantile of normal scores").run()
    assert at.slider(key="thr_q").value == pytest.approx(0.9, abs=1e-4)
    at.slider(key="thr_q").set_value(0.9001).run()
    assert float(metric(at, "Threshold")) >= value
    assert metric(at, "Threshold") == f"{np.quantile(detector.normal_scores_, 0.9001):.4g}"


def test_save_threshold_writes_it_into_the_model(dash_env, fixed_reference, tmp_path, monkeypatch):
    detector, _, scores = fixed_reference
    models = tmp_path / "models"
    shutil.copytree(dash_env["models"] / "tiny_fixed", models / "tiny_fixed")
    monkeypatch.setenv("ANOMALY_MODELS_DIR", str(models))
    at = page(app(), "threshold")
    assert at.sidebar.selectbox(key="model").value == "tiny_fixed"
    assert at.button(key="thr_save").disabled
    slider = at.slider(key="thr_abs")
    value = round(detector.threshold_for() * 0.5 / slider.step) * slider.step
    slider.set_value(value).run()
    at.button(key="thr_save").click().run()
    ok(at)
    saved = LSTMAutoencoderDetector.load(models / "tiny_fixed")
    assert saved.thresholds_["rule"] == "manual"
    assert saved.threshold_for() == pytest.approx(value)
    assert any("Saved threshold" in s.value for s in at.success)
    assert metric(at, "Events") == str(len(detector.events(scores, threshold=value)))
    assert at.button(key="thr_save").disabled  # the saved value is now the model's own


def test_fixed_threshold_with_a_root_score_flags_as_the_model_would(dash_env, dash_dirs):
    """``--local-rule none`` models compare the root of the score with the root of the threshold, then
    pad: the dashboard's flags at any threshold are those of the model scoring with that threshold saved."""
    detector, frame, scores = _reference(dash_dirs, "tiny_fixed_root")
    at = app(model="tiny_fixed_root")
    ok(at)
    assert metric(at, "Events") == str(len(detector.events(scores)))
    assert metric(at, "Flagged points") == f"{int(scores['is_anomaly'].sum()):,}"
    assert f"threshold {scores['threshold'].iloc[0]:.4g}" in [a["text"] for a in figure(at)["layout"]["annotations"]]
    assert metric(at, "Threshold") == f"{scores['threshold'].iloc[0]:.4g}"  # the number the line is labelled with
    at = page(at, "threshold")
    assert (
        "(rule **quantile**): compared as square roots (the Series page draws the roots); each event widened "
        "by **100** points on both sides."
    ) in explanation(at)
    slider = at.slider(key="thr_abs")
    value = round(float(np.quantile(detector.normal_scores_, 0.99)) / slider.step) * slider.step
    slider.set_value(value).run()
    ok(at)
    alt = copy.copy(detector)
    alt.thresholds_ = {**detector.thresholds_, "rule": "manual", "values": {**detector.thresholds_["values"], "manual": value}}
    expected = alt.score(frame)
    assert len(alt.events(expected)) != len(detector.events(scores))
    assert metric(at, "Events") == str(len(alt.events(expected)))
    at = page(at, "series")
    assert metric(at, "Flagged points") == f"{int(expected['is_anomaly'].sum()):,}"


# -- Threshold: a batch rule (ksigma, dynamic, pot) ------------------------------------------------
def test_batch_rule_is_explained_and_shown_as_scored(dash_env, dash_dirs):
    detector, _, scores = _reference(dash_dirs, "tiny_ksigma")
    at = page(app(model="tiny_ksigma"), "threshold")
    ok(at)
    assert "against the whole scored batch (rule **ksigma**" in explanation(at)
    assert not at.slider and not at.button  # nothing to tune here
    assert metric(at, "Events") == str(len(detector.events(scores)))
    assert metric(at, "Flagged points") == f"{int(scores['is_anomaly'].sum()):,}"
    np.testing.assert_allclose(array(trace(figure(at), "threshold")["y"]).astype(float), scores["threshold"], rtol=1e-12)
    at = page(at, "series")
    assert metric(at, "Threshold") == "ksigma"
    assert metric(at, "Events") == str(len(detector.events(scores)))


# -- Events -------------------------------------------------------------------------------------
def test_picking_an_event_changes_the_zoomed_range(dash_env, reference):
    detector, _, scores = reference
    flagged, events = tuned(detector, scores, local_k=2.0)
    assert len(events) >= 2
    at = page(app(), "threshold")
    at.slider(key="flag_k").set_value(2.0).run()
    at = page(at, "events")
    ok(at)
    table = at.dataframe[0].value
    assert len(table) == len(events)
    assert list(table.columns) == ["start", "end", "duration", "peak_score", "severity", "sensors"]
    assert table["severity"].to_numpy() == pytest.approx(events["severity"].to_numpy())
    assert at.get("download_button")

    def highlighted() -> list[int]:
        """The rows the page sends the browser's table to highlight (and keeps as the table's state)."""
        sent = json.loads(at.dataframe[0].proto.selection_state)["selection"]["rows"]
        assert sent == list(at.session_state["event_table"]["selection"]["rows"])
        return sent

    assert highlighted() == [at.selectbox(key="event_pick").value] == [int(events["severity"].to_numpy().argmax())]
    ranges = {}
    for i in (0, 1):
        at.selectbox(key="event_pick").set_value(i).run()
        ok(at)
        assert highlighted() == [i]  # the table's highlighted row follows the picker
        lo, hi = (pd.Timestamp(x) for x in figure(at)["layout"]["xaxis"]["range"])
        start, end = (flagged.index.get_loc(events[c][i]) for c in ("start", "end"))
        pad = max(end - start, 2 * detector.window, 10)  # the event's length on each side, at least 2 windows
        assert (lo, hi) == (flagged.index[max(start - pad, 0)], flagged.index[min(end + pad, len(flagged) - 1)])
        ranges[i] = (lo, hi)
    assert ranges[0] != ranges[1]
    spec = figure(at)
    names = [t.get("name") for t in spec["data"]]
    assert names.count("original") == 2 and names.count("reconstruction") == 2
    assert {"error a", "error b", "score"} <= set(names)
    line = trace(spec, "threshold")  # the zoom's score row: the per-row threshold of the rule in force
    part = flagged.loc[ranges[1][0] : ranges[1][1], "threshold"]
    assert (times(line["x"]) == part.index).all()
    np.testing.assert_allclose(array(line["y"]).astype(float), part, rtol=1e-12)


# -- Train --------------------------------------------------------------------------------------
def _train_form(at: AppTest, name: str) -> AppTest:
    at.file_uploader(key="train_upload").set_value(("train.csv", csv_bytes(make_series(600, seed=3)), "text/csv")).run()
    ok(at)
    for key, value in {"train_window": 8, "train_units": 8, "train_latent": 4, "train_epochs": 2}.items():
        at.number_input(key=key).set_value(value)
    at.text_input(key="train_name").set_value(name)
    return at.run()


def test_train_page_trains_and_saves_a_tiny_model(own_models):
    at = page(app(), "train")
    ok(at)
    at = _train_form(at, "fresh")
    assert at.multiselect(key="train_sensors").value == ["a", "b"]
    at.button(key="train_go").click().run(timeout=600)
    ok(at)
    saved = LSTMAutoencoderDetector.load(own_models / "fresh")
    assert saved.window == 8 and saved.encoder_units == (8,) and saved.columns_ == ["a", "b"]
    assert len(saved.history_["loss"]) == 2
    assert saved.fingerprint_["rows"] == 361  # 60% of 600 rows: rows 0..360 form the default normal period
    assert saved.reading_ == {"timestamp_col": "timestamp", "duplicates": "mean", "max_gap": 3, "missing_values": []}
    assert any("Saved model 'fresh'" in s.value and "flags rows over mean + 6 std" in s.value for s in at.success)
    assert at.sidebar.selectbox(key="model").value == "fresh"
    # untouched widgets keep the detector's defaults: the configuration `anomaly train` and the bench use
    untouched = {"window", "encoder_units", "decoder_units", "latent_dim", "epochs", "verbose"}
    defaults = LSTMAutoencoderDetector().get_params()
    assert {k: v for k, v in saved.get_params().items() if k not in untouched} == {
        k: v for k, v in defaults.items() if k not in untouched
    }
    at.button(key="train_go").click().run()  # same name again: refused without "replace"
    assert [e.value for e in at.error] == ["a model named 'fresh' exists; tick 'Replace if it exists' or pick another name"]


def test_train_page_offers_each_files_own_columns(dash_env):
    """A second file starts from its own numeric columns, not the first file's choice (once: none left)."""
    at = page(app(), "train")
    at = _train_form(at, "x")
    at.multiselect(key="train_sensors").set_value(["b"]).run()
    other = make_series(600, seed=4).rename(columns={"a": "flow", "b": "temp"}).assign(site="north")
    at.file_uploader(key="train_upload").set_value(("other.csv", csv_bytes(other), "text/csv")).run()
    ok(at)
    assert at.selectbox(key="train_ts").value == "timestamp"
    assert at.multiselect(key="train_sensors").value == ["flow", "temp"]  # the text column is not offered by default
    assert not at.info  # no "Pick at least one sensor column"


def test_train_page_guesses_the_timestamp_and_offers_what_train_would_use(dash_env):
    """A time column not first, a saved row index and a sensor with one bad cell: the page picks
    'time', leaves out the index and offers 'flow' (its 'ERR' is then reported, not the column
    dropped); choosing another timestamp column offers that column's own sensors, and back again."""
    at = page(app(), "train")
    at = _train_form(at, "x")
    frame = make_series(600, seed=4).reset_index().rename(columns={"timestamp": "time", "a": "temp", "b": "flow"})
    frame = frame[["temp", "time", "flow"]].astype({"flow": object})
    frame.loc[17, "flow"] = "ERR"
    upload = frame.to_csv().encode()  # with pandas' row index, under a blank header
    at.file_uploader(key="train_upload").set_value(("plant.csv", upload, "text/csv")).run()
    assert at.selectbox(key="train_ts").value == "time"
    assert at.multiselect(key="train_sensors").value == ["temp", "flow"]
    assert [e.value for e in at.error] == ["plant.csv: column 'flow', line 19: non-numeric value 'ERR'"]
    at.multiselect(key="train_sensors").set_value(["temp"]).run()
    ok(at)
    at.selectbox(key="train_ts").set_value("temp").run()
    assert at.multiselect(key="train_sensors").value == ["flow"]  # 'time' is text: not offered by default
    assert "plant.csv: column 'temp' holds numbers (-0.0325896...), not times" in at.error[0].value
    at.selectbox(key="train_ts").set_value("time").run()
    assert at.multiselect(key="train_sensors").value == ["temp", "flow"]


def test_train_page_keeps_the_choice_while_its_file_grows(dash_env, tmp_path, monkeypatch):
    """A collector appending rows to the chosen file (a new modification time) changes nothing chosen."""
    shutil.copytree(dash_env["data"], tmp_path / "data")
    monkeypatch.setenv("ANOMALY_DATA_DIR", str(tmp_path / "data"))
    at = page(app(), "train")
    at.radio(key="train_origin").set_value("File of the data folder").run()
    at.selectbox(key="train_file").set_value("series.csv").run()
    at.multiselect(key="train_sensors").set_value(["b"]).run()
    with open(tmp_path / "data" / "series.csv", "a") as fh:
        fh.write("2030-01-01 00:00:00,1.0,2.0\n")
    os.utime(tmp_path / "data" / "series.csv", (time.time() + 5, time.time() + 5))
    at.text_input(key="train_name").set_value("grown").run()
    ok(at)
    assert at.multiselect(key="train_sensors").value == ["b"]


def test_train_page_keeps_the_form_across_pages(dash_env, tmp_path, monkeypatch):
    """A look at another page keeps what was entered on the Train page (Streamlit drops the value of a
    widget its run does not draw)."""
    data = tmp_path / "data"
    data.mkdir()
    for name in ("other.csv", "series.csv"):
        (data / name).write_bytes(csv_bytes(make_series(600)))
    monkeypatch.setenv("ANOMALY_DATA_DIR", str(data))
    at = page(app(), "train")
    at.radio(key="train_origin").set_value("File of the data folder").run()
    assert at.selectbox(key="train_file").value == "other.csv"
    at.selectbox(key="train_file").set_value("series.csv")
    at.selectbox(key="train_kind").set_value("prediction").run()  # the horizon is for prediction models
    ok(at)
    first = make_series(600).index
    period = (first[10].to_pydatetime(), first[300].to_pydatetime())
    entered = {"train_window": 16, "train_epochs": 3, "train_lr": 0.002, "train_horizon": 4}
    for key, value in entered.items():
        at.number_input(key=key).set_value(value)
    at.multiselect(key="train_sensors").set_value(["b"])
    at.checkbox(key="train_dup").uncheck()
    at.text_input(key="train_name").set_value("keepme")
    at.slider(key="train_period").set_value(period)
    more = [n for n in at.number_input if n.key.startswith("train_more_")][0]
    more.set_value(more.value + 1)
    at.run()
    ok(at)
    at = page(page(at, "model"), "train")
    ok(at)
    assert at.radio(key="train_origin").value == "File of the data folder"
    assert at.selectbox(key="train_file").value == "series.csv"
    assert {key: at.number_input(key=key).value for key in entered} == entered
    assert at.multiselect(key="train_sensors").value == ["b"]
    assert not at.checkbox(key="train_dup").value
    assert at.text_input(key="train_name").value == "keepme"
    assert at.selectbox(key="train_kind").value == "prediction"
    assert at.slider(key="train_period").value == period
    assert at.number_input(key=more.key).value == more.value
    (data / "series.csv").write_bytes(csv_bytes(make_series(500)))  # another span: that data's own normal period
    at.run()
    ok(at)
    assert at.slider(key="train_period").value[1] == make_series(500).index[300].to_pydatetime()


def test_train_page_sets_the_flagging_rule(own_models):
    at = _train_form(page(app(), "train"), "tuned")
    at.number_input(key="train_local_k").set_value(5.0)
    at.number_input(key="train_trailing").set_value(300)
    at.number_input(key="train_cap").set_value(0.0)
    at.checkbox(key="train_exclude").uncheck()
    at.number_input(key="train_padding").set_value(7)
    # "More settings": every hyperparameter the page does not place, generated from its declaration
    from anomaly.dashboard.common import TRAIN_PLACED
    from anomaly.params import form_fields

    widgets = [*at.number_input, *at.checkbox, *at.selectbox, *at.text_input]
    more = {w.key.removeprefix("train_more_") for w in widgets if (w.key or "").startswith("train_more_")}
    assert more == set(form_fields(LSTMAutoencoderDetector, TRAIN_PLACED)) and {"seed", "prune", "normalize_errors"} <= more
    at.number_input(key="train_more_seed").set_value(3)
    at.number_input(key="train_more_prune").set_value(0.1)
    at.text_input(key="train_more_timezone").set_value("Europe/Paris")
    at.number_input(key="train_more_trim").set_value(0.1)  # two fits: the progress restarts with the second
    at.button(key="train_go").click().run(timeout=600)
    ok(at)
    saved = LSTMAutoencoderDetector.load(own_models / "tuned")
    assert saved.timezone == saved.timezone_ == "Europe/Paris" and saved.trim == 0.1
    assert (
        saved.local_rule,
        saved.local_k,
        saved.local_trailing,
        saved.local_cap,
        saved.local_exclude,
        saved.event_padding,
        saved.seed,
        saved.prune,
    ) == ("trailing", 5.0, 300, 0.0, False, 7, 3, 0.1)
    at = _train_form(page(app(), "train"), "fixed")
    at.selectbox(key="train_flagging").set_value("fixed").run()
    at.selectbox(key="train_rule").set_value("max")
    at.button(key="train_go").click().run(timeout=600)
    ok(at)
    saved = LSTMAutoencoderDetector.load(own_models / "fixed")
    assert saved.local_rule is None and saved.thresholds_["rule"] == "max"
    assert saved.timezone is None  # an empty field: the timestamps' own zone


def test_train_page_trains_a_prediction_model(own_models):
    """With a sensor constant in the normal period, whose warning the fit logs, shown after the save."""
    at = _train_form(page(app(), "train"), "predictor")
    data = make_series(600, seed=3).assign(c=1.0)
    at.file_uploader(key="train_upload").set_value(("train.csv", csv_bytes(data), "text/csv")).run()
    at.selectbox(key="train_kind").set_value("prediction").run()
    at.number_input(key="train_horizon").set_value(3)
    at.checkbox(key="train_bidirectional").check()
    at.button(key="train_go").click().run(timeout=600)
    assert not at.exception and not at.error
    assert [w.value for w in at.warning] == [
        "sensor 'c' is constant in the normal period: kept unscaled, so any change in it scores as anomalous "
        "(leave it out of “Sensor columns”, or refuse it with “On constant” under More settings)"
    ]
    saved = LSTMAutoencoderDetector.load(own_models / "predictor")
    assert saved.model_kind == "prediction" and saved.horizon == 3 and not saved.reverse and saved.bidirectional
    assert saved.columns_ == ["a", "b", "c"]
    assert np.isfinite(saved.score(data)["score"].iloc[-100:]).all()


def test_train_page_refuses_a_name_outside_the_models_folder(own_models):
    at = _train_form(page(app(), "train"), "../escaped")
    at.button(key="train_go").click().run()
    assert not at.exception
    assert len(at.error) == 1 and "not allowed" in at.error[0].value
    assert not (own_models.parent / "escaped").exists()
    assert sorted(p.name for p in own_models.iterdir()) == ["tiny"]


def test_train_page_refuses_a_models_folder_it_cannot_write_before_training(own_models, monkeypatch):
    """The save failed after the whole fit; now the page says so before it."""
    real_access = os.access
    # The tests run as root, whom no permission stops: the folder is made read-only to os.access alone.
    monkeypatch.setattr(os, "access", lambda path, mode: Path(path) != own_models and real_access(path, mode))
    at = _train_form(page(app(), "train"), "fresh")
    at.button(key="train_go").click().run()
    assert not at.exception and [e.value for e in at.error] == [
        f"{own_models / 'fresh'}: cannot save a model there: no permission to write in {own_models}"
    ]
    assert not any("Epoch" in (p.text or "") for p in at.get("progress")) and sorted(p.name for p in own_models.iterdir()) == [
        "tiny"
    ]


def test_train_page_reads_missing_value_codes_as_missing(dash_env):
    at = page(app(), "train")
    at = _train_form(at, "x")
    coded = make_series(600, seed=4)
    coded.iloc[[40, 41], 1] = -9999.0
    at.file_uploader(key="train_upload").set_value(("coded.csv", csv_bytes(coded), "text/csv")).run()
    assert not any("missing-value code" in w.value for w in at.warning)  # unnamed, -9999 is a reading
    at.text_input(key="train_missing").input("-9999").run()
    ok(at)
    assert any("coded.csv: 2 cell(s) equal to a missing-value code treated as missing (b 2)" in w.value for w in at.warning)


def test_train_page_bad_upload_shows_an_error(dash_env):
    at = page(app(), "train")
    at.file_uploader(key="train_upload").set_value(("empty.csv", b"timestamp,a\n", "text/csv")).run()
    assert not at.exception
    assert [e.value for e in at.error] == ["empty.csv: has a header but no data rows"]


# -- Model --------------------------------------------------------------------------------------
def test_model_page_shows_the_model_card(dash_env, reference):
    detector, _, _ = reference
    at = page(app(), "model")
    ok(at)
    assert metric(at, "Threshold") == "trailing, k = 6"
    assert not at.dataframe[0].value["in force"].any()  # the fixed thresholds are not what flags
    assert metric(at, "Sensors") == "2"
    assert metric(at, "Epochs run") == "2"
    assert metric(at, "Sampling interval") == "5min"
    loss = figure(at)
    assert [t["name"] for t in loss["data"]] == ["training", "validation"]
    assert loss["data"][0]["y"] == pytest.approx(detector.history_["loss"])
    frames = [d.value for d in at.dataframe]
    params = frames[1].set_index("parameter")["value"]
    assert params["window"] == "8" and params["encoder_units"] == "8"
    assert frames[2].set_index("field")["value"]["sha256"] == detector.fingerprint_["sha256"]
    assert any(c.value.startswith("Not recorded (a model from an older version, or fitted in Python)") for c in at.caption)
    assert at.sidebar.text_input(key="ts_col").placeholder == "timestamp"
    span = f"**stride**: {detector.stride_}  ·  **score smoothed over**: {detector.smoothing_} points"
    assert any(span in m.value for m in at.markdown if m.value.startswith("**Columns**"))
    at.sidebar.selectbox(key="model").set_value("tiny_fixed").run()
    assert metric(at, "Threshold (quantile)") == f"{detector.threshold_for():.4g}"
    assert at.dataframe[0].value.set_index("rule")["in force"].to_dict() == {"quantile": True, "ksigma": False, "max": False}


def test_model_page_shows_seasonal_profiles_or_says_there_are_none(own_models):
    index = pd.date_range("2024-01-01", periods=8 * 48, freq="30min", name="timestamp")  # 8 days
    busy = ((index.hour >= 9) & (index.hour < 17)).astype(float)
    noise = np.random.default_rng(0).normal(0, 0.05, (len(index), 2))
    frame = pd.DataFrame({"a": busy + noise[:, 0], "b": np.sin(np.arange(len(index)) / 3) + noise[:, 1]}, index=index)
    detector = LSTMAutoencoderDetector(**TINY).fit(frame)
    detector.save(own_models / "daily")
    at = page(app(model="daily"), "model")
    ok(at)
    [text] = [m.value for m in at.markdown if "Seasonal profiles" in m.value]
    assert f"`a` (day, R² {detector.seasonal_['a'].r2:.2f} on held-out periods)" in text and "`b`" not in text
    profile = trace(figure(at, 1), "a (day)")
    np.testing.assert_allclose(array(profile["y"]), detector.seasonal_["a"].levels)
    np.testing.assert_allclose(array(profile["x"]), detector.seasonal_["a"].offsets / 3600)
    at.sidebar.selectbox(key="model").set_value("tiny").run()
    assert any(
        "No seasonal profile (seasonal auto): no sensor's daily" in c.value and "fewer than 4 days" in c.value for c in at.caption
    )


# -- Embeddings ---------------------------------------------------------------------------------
def test_embeddings_page_projects_every_window(dash_env, reference):
    detector, frame, scores = reference
    at = page(app(), "embeddings")
    ok(at)
    n_windows = len(frame) - detector.window + 1
    assert metric(at, "Windows") == f"{n_windows:,}"
    trace = figure(at)["data"][0]
    assert len(array(trace["x"])) == n_windows
    assert array(trace["marker"]["color"]).max() == pytest.approx(float(np.nanmax(scores["score"])), rel=1e-6)
    assert "→" in trace["text"][0]
    at.radio(key="emb_colour").set_value("log score").run()  # coloured by the log, labelled so; hover keeps the score
    trace = figure(at)["data"][0]
    top = float(np.nanmax(scores["score"]))
    assert array(trace["marker"]["color"]).max() == pytest.approx(np.log10(top), rel=1e-6)
    assert trace["marker"]["colorbar"]["title"]["text"] == "log10 score"
    assert array(trace["customdata"]).max() == pytest.approx(top, rel=1e-6)


def test_embeddings_need_sensor_values(dash_env):
    at = page(app(source_kind="Upload"), "embeddings")
    assert not at.exception
    assert any("Upload a CSV" in i.value for i in at.info)


# -- History ------------------------------------------------------------------------------------
def test_history_page(dash_env, reference, tmp_path, monkeypatch):
    try:
        from anomaly import store  # noqa: F401
    except ImportError:
        at = page(app(), "history")
        ok(at)
        assert [i.value for i in at.info] == [
            "The results database module (`anomaly.store`) is not part of this installation yet, "
            "so there is no scoring history to show."
        ]
        return
    detector, _, scores = reference
    monkeypatch.setenv("ANOMALY_DB", str(tmp_path / "results.db"))
    at = page(app(), "history")
    ok(at)
    assert any("No results database yet" in i.value for i in at.info)
    assert not (tmp_path / "results.db").exists()  # reading never creates a database
    fill_store(tmp_path / "results.db", detector, scores)
    at.run()
    ok(at)
    assert metric(at, "Runs") == "2"
    assert metric(at, "Failed runs") == "1"
    assert metric(at, "Events") == str(len(detector.events(scores)))
    versions = at.dataframe[0].value  # the first table: model versions
    assert versions["model"].tolist() == ["tiny@0123456789ab", "tiny"] and versions["runs"].tolist() == [1, 1]
    assert len(at.get("plotly_chart")) == 2
    legend = figure(at, 0)["layout"]["legend"]  # runs over time: the legend above the plot area, not over a run
    assert legend["yanchor"] == "bottom" and legend["y"] > 1
    assert metric(at, "Precision (feedback)") == "–"
    assert not at.warning  # every alert sent


def test_history_page_shows_the_alerts_not_sent_yet(dash_env, reference, tmp_path, monkeypatch):
    from anomaly.store import open_store

    detector, _, scores = reference
    monkeypatch.setenv("ANOMALY_DB", str(tmp_path / "results.db"))
    with open_store(tmp_path / "results.db", create=True) as store:  # a run whose --on-event command failed
        run = store.begin_run("series.csv", "tiny")
        written = scores.drop(columns=[c for c in scores if c.startswith("recon_")])
        added = store.commit_run(run, "series.csv", "tiny", written, detector.events(scores), scores.index[0], alerts=list)
        claim, pending = store.claim_alerts("series.csv", 120)
        store.alert_done("series.csv", pending[0], claim, "--on-event command exited with 7")
        store.release_alerts(claim)
    at = page(app(), "history")
    assert not at.exception and not at.error
    [warning] = [w.value for w in at.warning]
    assert warning.startswith(f"{len(added)} alert(s) not sent yet (1 after a failed --on-event command)")
    table = [d.value for d in at.dataframe if "tries" in d.value.columns][0]
    assert table["tries"].tolist() == [1] + [0] * (len(added) - 1)
    assert table["error"].tolist()[0] == "--on-event command exited with 7"


def submit_verdict(at: AppTest, key: str, verdict: str, name: str = "ana", note: str = "", mute: bool = False) -> AppTest:
    """Fill the review form ``key`` and press Save verdict."""
    at.radio(key=f"{key}_verdict").set_value(verdict)
    at.checkbox(key=f"{key}_mute").set_value(mute)
    at.text_input(key="reviewer").set_value(name)
    at.text_input(key=f"{key}_note").set_value(note)
    [b for b in at.button if b.label == "Save verdict"][0].click()
    return at.run()


def test_history_page_reviews_events_and_shows_precision(dash_env, reference, tmp_path, monkeypatch):
    from anomaly.store import open_store

    detector, _, scores = reference
    monkeypatch.setenv("ANOMALY_DB", str(tmp_path / "results.db"))
    fill_store(tmp_path / "results.db", detector, scores)
    stored = detector.events(scores)
    at = page(app(), "history")
    ok(at)
    assert at.selectbox(key="hist_review_pick").value == 0  # the latest event first
    at.text_input(key="reviewer").set_value("")
    [b for b in at.button if b.label == "Save verdict"][0].click()
    at.run()
    assert [e.value for e in at.error] == ["a verdict needs the name of who gives it"]
    at = submit_verdict(at, "hist_review", "false_alarm", note="sensor swap")
    ok(at)
    assert [m.value for m in at.success] == [f"Saved: false alarm (series.csv, {stored['start'].iloc[-1]:%Y-%m-%d %H:%M})."]
    assert metric(at, "Precision (feedback)") == "0%"
    with open_store(tmp_path / "results.db") as store:
        fb = store.feedback()
    assert fb[["source", "model", "verdict", "author", "note"]].values.tolist() == [
        ["series.csv", "tiny", "false_alarm", "ana", "sensor swap"]
    ]
    assert fb["start"].tolist() == [stored["start"].iloc[-1]]
    tables = [d.value for d in at.dataframe]  # model versions, feedback by version, runs, events
    events_table = tables[3]
    assert events_table["verdict"].tolist()[-1] == "false alarm"
    assert events_table["author"].tolist()[-1] == "ana"
    precision_table = tables[1]
    assert precision_table[["model", "reviewed", "true_alarms", "false_alarms"]].values.tolist() == [["tiny", 1, 0, 1]]
    at = submit_verdict(at, "hist_review", "true_alarm")  # a second opinion replaces the first
    ok(at)
    assert metric(at, "Precision (feedback)") == "100%"
    assert any(c.value.startswith("Marked **true alarm** by ana on ") for c in at.caption)
    at = submit_verdict(at, "hist_review", "true_alarm", mute=True)
    assert [e.value for e in at.error] == [
        "A true alarm silences nothing: mark it a false alarm or acknowledged to mute the source."
    ]


def test_events_page_reviews_the_stored_event_of_the_selected_one(dash_env, reference, tmp_path, monkeypatch):
    from anomaly.store import open_store

    detector, _, scores = reference
    monkeypatch.setenv("ANOMALY_DB", str(tmp_path / "results.db"))
    fill_store(tmp_path / "results.db", detector, scores)
    at = page(app(source_kind="Data file"), "events")  # a file's events are not stored: nothing to review
    ok(at)
    assert any("pick “Scoring database” in the sidebar to review them" in c.value for c in at.caption)
    at = page(app(source_kind="Scoring database"), "events")
    ok(at)
    table = at.dataframe[0].value
    assert table["verdict"].tolist() == ["not reviewed"] * len(detector.events(scores))
    at = submit_verdict(at, "event_review", "acknowledged")
    ok(at)
    pick = at.selectbox(key="event_pick").value
    with open_store(tmp_path / "results.db") as store:
        fb = store.feedback()
    assert fb["verdict"].tolist() == ["acknowledged"]
    assert fb["start"].tolist() == [detector.events(scores)["start"].iloc[pick]]
    assert at.dataframe[0].value["verdict"].tolist()[pick] == "acknowledged"


@pytest.fixture()
def downloads(monkeypatch) -> dict:
    """The bytes each download button offers, by file name (AppTest keeps no media file after a run)."""
    from streamlit.runtime.media_file_manager import MediaFileManager

    files, add = {}, MediaFileManager.add

    def spy(self, data, *args, file_name=None, **kwargs):
        files[file_name] = data
        return add(self, data, *args, file_name=file_name, **kwargs)

    monkeypatch.setattr(MediaFileManager, "add", spy)
    return files


def test_events_download_holds_the_verdicts_the_page_shows(dash_env, reference, tmp_path, monkeypatch, downloads):
    from anomaly.feedback import REVIEW_COLUMNS

    detector, _, scores = reference
    stored = detector.events(scores)
    columns = ["start", "end", "peak_score", "severity", "sensors"]
    at = page(app(source_kind="Data file"), "events")  # no verdict on the table: none in the file
    ok(at)
    assert list(pd.read_csv(io.BytesIO(downloads["events.csv"])).columns) == columns
    monkeypatch.setenv("ANOMALY_DB", str(tmp_path / "results.db"))
    fill_store(tmp_path / "results.db", detector, scores)
    at = page(app(source_kind="Scoring database"), "events")
    at = submit_verdict(at, "event_review", "false_alarm", note="pump swap")
    ok(at)
    pick = at.selectbox(key="event_pick").value
    got = pd.read_csv(io.BytesIO(downloads["events.csv"]))
    assert list(got.columns) == columns + REVIEW_COLUMNS
    assert got["start"].tolist() == [t.isoformat() for t in stored["start"]]
    assert got["verdict"].fillna("").tolist() == ["false_alarm" if i == pick else "" for i in range(len(stored))]
    assert got.loc[pick, ["author", "note"]].tolist() == ["ana", "pump swap"]


def test_history_download_writes_iso_8601_times(dash_env, reference, tmp_path, monkeypatch, downloads):
    """The History page's events file gives times as the Events page's and `anomaly score --events` do."""
    detector, _, scores = reference
    stored = detector.events(scores)
    monkeypatch.setenv("ANOMALY_DB", str(tmp_path / "results.db"))
    fill_store(tmp_path / "results.db", detector, scores)
    at = submit_verdict(page(app(), "history"), "hist_review", "false_alarm")
    ok(at)
    got = pd.read_csv(io.BytesIO(downloads["history_events.csv"]), dtype=str, keep_default_na=False)
    assert got["start"].tolist() == [t.isoformat() for t in stored["start"]]
    assert got["end"].tolist() == [t.isoformat() for t in stored["end"]]
    [reviewed] = [t for t in got["at"] if t]
    assert pd.Timestamp(reviewed).isoformat() == reviewed and "T" in reviewed


def test_history_page_refresh_reads_the_database_again(dash_env, reference, tmp_path, monkeypatch):
    from anomaly.store import open_store

    detector, _, scores = reference
    monkeypatch.setenv("ANOMALY_DB", str(tmp_path / "results.db"))
    fill_store(tmp_path / "results.db", detector, scores)
    at = page(app(), "history")
    ok(at)
    assert metric(at, "Runs") == "2"
    [caption] = [c.value for c in at.caption if c.value.startswith("Results database:")]
    assert "does not update by itself" in caption and "refreshed every" not in caption
    with open_store(tmp_path / "results.db") as store:
        store.fail_run(store.begin_run("series.csv", "tiny"), "series.csv: file not found")
    at.run()
    assert metric(at, "Runs") == "2"  # read less than 30 s ago: kept, as the caption says
    at.button(key="hist_refresh").click().run()
    ok(at)
    assert metric(at, "Runs") == "3" and metric(at, "Failed runs") == "2"


# -- the hook the Train page uses -----------------------------------------------------------------
def test_fit_reports_every_epoch_to_on_epoch():

    calls = []
    detector = LSTMAutoencoderDetector(**TINY).fit(make_series(400).iloc[:300], on_epoch=lambda e, logs: calls.append((e, logs)))
    assert [e for e, _ in calls] == [0, 1]
    assert [logs["loss"] for _, logs in calls] == detector.history_["loss"]
    assert [logs["val_loss"] for _, logs in calls] == detector.history_["val_loss"]
    assert all(type(v) is float for _, logs in calls for v in logs.values())
