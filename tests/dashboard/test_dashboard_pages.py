"""Every page of the dashboard through Streamlit's AppTest, on a tiny model and a generated series.

The app reads its folders from the environment (see dash_support.py), so each test sees only the temp
models/ and data/ folders; tests that write (save a threshold, train) get their own copy.
"""

from __future__ import annotations

import io
import json
import shutil

import numpy as np
import pandas as pd
import pytest
from dash_support import APP, csv_bytes, dash_dirs, dash_env, fill_store, make_series  # noqa: F401 (fixtures)
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


@pytest.fixture(scope="module")
def reference(dash_dirs):
    """The tiny model's own scores of the bundled series, computed without the app."""
    detector = LSTMAutoencoderDetector.load(dash_dirs["models"] / "tiny")
    frame = load_series(dash_dirs["data"] / "series.csv")
    return detector, frame, detector.score(frame, reconstruct=True)


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


def test_series_time_range_narrows_what_is_drawn(dash_env, reference):
    _, frame, _ = reference
    at = app()
    lo, hi = frame.index[100].to_pydatetime(), frame.index[199].to_pydatetime()
    at.slider(key="series_view").set_value((lo, hi)).run()
    ok(at)
    score_trace = [t for t in figure(at)["data"] if t.get("name") == "score"][0]
    assert len(score_trace["x"]) == 100
    assert pd.Timestamp(score_trace["x"][0]) == frame.index[100]


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
    assert len(at.error) == 1 and "'b'" in at.error[0].value and "\n" not in at.error[0].value
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


# -- Threshold ----------------------------------------------------------------------------------
def test_moving_the_threshold_changes_the_event_count(dash_env, reference):
    detector, _, scores = reference
    at = page(app(), "threshold")
    ok(at)
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
    at = page(at, "threshold")
    at.button(key="thr_reset").click().run()
    assert metric(at, "Events") == str(len(detector.events(scores)))


def test_quantile_mode_sets_the_threshold_from_normal_scores(dash_env, reference):
    detector, _, scores = reference
    at = page(app(), "threshold")
    at.radio(key="thr_mode").set_value("quantile of normal scores").run()
    at.slider(key="thr_q").set_value(0.9).run()
    ok(at)
    value = float(np.quantile(detector.normal_scores_, 0.9))
    assert metric(at, "Threshold") == f"{value:.4g}"
    assert metric(at, "Events") == str(len(detector.events(scores, threshold=value)))


def test_save_threshold_writes_it_into_the_model(own_models, reference):
    detector, _, scores = reference
    at = page(app(), "threshold")
    assert at.button(key="thr_save").disabled
    slider = at.slider(key="thr_abs")
    value = round(detector.threshold_for() * 0.5 / slider.step) * slider.step
    slider.set_value(value).run()
    at.button(key="thr_save").click().run()
    ok(at)
    saved = LSTMAutoencoderDetector.load(own_models / "tiny")
    assert saved.thresholds_["rule"] == "manual"
    assert saved.threshold_for() == pytest.approx(value)
    assert any("Saved threshold" in s.value for s in at.success)
    assert metric(at, "Events") == str(len(detector.events(scores, threshold=value)))
    assert at.button(key="thr_save").disabled  # the saved value is now the model's own


# -- Events -------------------------------------------------------------------------------------
def test_picking_an_event_changes_the_zoomed_range(dash_env, reference):
    detector, _, scores = reference
    events = detector.events(scores)
    assert len(events) >= 2
    at = page(app(), "events")
    ok(at)
    table = at.dataframe[0].value
    assert len(table) == len(events)
    assert list(table.columns) == ["start", "end", "duration", "peak_score", "severity", "sensors"]
    assert at.get("download_button")
    ranges = {}
    for i in (0, 1):
        at.selectbox(key="event_pick").set_value(i).run()
        ok(at)
        lo, hi = (pd.Timestamp(x) for x in figure(at)["layout"]["xaxis"]["range"])
        assert lo < events["start"][i] and hi > events["end"][i]
        ranges[i] = (lo, hi)
    assert ranges[0] != ranges[1]
    spec = figure(at)
    names = [t.get("name") for t in spec["data"]]
    assert names.count("original") == 2 and names.count("reconstruction") == 2
    assert {"error a", "error b"} <= set(names)


def test_events_page_with_no_event_says_so(dash_env, reference):
    detector, _, _ = reference
    at = page(app(), "threshold")
    at.slider(key="thr_abs").set_value(at.slider(key="thr_abs").max).run()
    assert metric(at, "Events") == "0"
    at = page(at, "events")
    ok(at)
    assert any("No event" in i.value for i in at.info)


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
    assert any("Saved model 'fresh'" in s.value for s in at.success)
    assert at.sidebar.selectbox(key="model").value == "fresh"
    at.button(key="train_go").click().run()  # same name again: refused without "replace"
    assert [e.value for e in at.error] == ["a model named 'fresh' exists; tick 'Replace if it exists' or pick another name"]


def test_train_page_trains_a_prediction_model(own_models):
    at = _train_form(page(app(), "train"), "predictor")
    at.selectbox(key="train_kind").set_value("prediction").run()
    at.number_input(key="train_horizon").set_value(3)
    at.checkbox(key="train_bidirectional").check()
    at.button(key="train_go").click().run(timeout=600)
    ok(at)
    saved = LSTMAutoencoderDetector.load(own_models / "predictor")
    assert saved.model_kind == "prediction" and saved.horizon == 3 and not saved.reverse and saved.bidirectional
    assert np.isfinite(saved.score(make_series(600, seed=3))["score"].iloc[-100:]).all()


def test_train_page_refuses_a_name_outside_the_models_folder(own_models):
    at = _train_form(page(app(), "train"), "../escaped")
    at.button(key="train_go").click().run()
    assert not at.exception
    assert len(at.error) == 1 and "not allowed" in at.error[0].value
    assert not (own_models.parent / "escaped").exists()
    assert sorted(p.name for p in own_models.iterdir()) == ["tiny"]


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
            "so there is no scoring history to show."]
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
    assert len(at.get("plotly_chart")) == 2


# -- the hook the Train page uses -----------------------------------------------------------------
def test_fit_reports_every_epoch_to_on_epoch():
    from dash_support import TINY

    calls = []
    detector = LSTMAutoencoderDetector(**TINY).fit(make_series(400).iloc[:300], on_epoch=lambda e, logs: calls.append((e, logs)))
    assert [e for e, _ in calls] == [0, 1]
    assert [logs["loss"] for _, logs in calls] == detector.history_["loss"]
    assert [logs["val_loss"] for _, logs in calls] == detector.history_["val_loss"]
    assert all(type(v) is float for _, logs in calls for v in logs.values())
