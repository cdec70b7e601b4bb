"""The default, causal flagging through the detector, incremental scoring and the database.

One tiny model is fitted on the normal first part of a two-sensor series that later holds a long
anomaly (sensor ``a`` stuck 2.5 higher for 150 rows) and a spike. Whatever way the series is scored
(at once, in ten growing chunks, incrementally into a database run after run) every row gets the
same flag, and appending rows never changes a flag already final.
"""

from __future__ import annotations

import dataclasses
import logging

import conftest
import numpy as np
import pandas as pd
import pytest

from anomaly.detector import LSTMAutoencoderDetector
from anomaly.incremental import score_causal
from anomaly.scheduled import Job, run_job

N, NORMAL, WINDOW = 900, 400, 8
TINY = {**conftest.TINY, "window": WINDOW, "local_trailing": 200, "event_padding": 10}
# The defaults, and AER's mixture of errors (scaled by ranges learned at fit, so still causal).
H = 2
CONFIGS = {
    "defaults": {},
    "aer-mult": {"model_kind": "aer", "horizon": H, "combination": "mult"},
    "prediction": {"model_kind": "prediction", "horizon": H},
    "seasonal": {},  # the defaults on a series with busy hours: its daily profile is removed before scaling
}
# rows at the end of a prefix still waiting for windows: a window, plus the horizon (each side for aer)
SPAN = {"defaults": WINDOW, "aer-mult": WINDOW + 2 * H, "prediction": WINDOW + H, "seasonal": WINDOW}


def make_data(daily: bool = False) -> pd.DataFrame:
    """Two noisy waves; with ``daily``, rows 20 minutes apart (12.5 days), waves of 12 hours and both 3
    higher from 09:00 to 17:00: a daily shape that the seasonal profile removes."""
    rng = np.random.default_rng(1)
    t = np.arange(N)
    period = 36 if daily else 40
    frame = pd.DataFrame(
        {
            "a": np.sin(2 * np.pi * t / period) + 0.05 * rng.standard_normal(N),
            "b": np.cos(2 * np.pi * t / period) + 0.05 * rng.standard_normal(N),
        },
        index=pd.date_range("2024-03-01", periods=N, freq="20min" if daily else "min", name="timestamp"),
    )
    if daily:
        frame += 3.0 * ((frame.index.hour >= 9) & (frame.index.hour < 17))[:, None]
    frame.iloc[550:700, 0] += 2.5  # a long anomaly: a batch-relative threshold rises over it
    frame.iloc[800:803, 1] += 4.0  # a spike
    return frame


def fit_saved(config: str, tmp_path_factory):
    data = make_data(daily=config == "seasonal")
    detector = LSTMAutoencoderDetector(**TINY, **CONFIGS[config]).fit(data.iloc[:NORMAL])
    assert bool(detector.seasonal_) == (config == "seasonal")
    folder = tmp_path_factory.mktemp("causal")
    detector.save(folder / "model")
    data.reset_index().to_csv(folder / "full.csv", index=False)
    return detector, data, folder, SPAN[config]


@pytest.fixture(scope="module", params=list(CONFIGS))
def fitted(request, tmp_path_factory):
    """The defaults and the other kinds: every one scores causally, in chunks and into the database."""
    return fit_saved(request.param, tmp_path_factory)


def test_defaults_are_the_causal_rule():
    det = LSTMAutoencoderDetector()
    assert det.local_rule == "trailing" and det.root_score and det.local_cap > 0 and det.on_constant == "keep"
    assert det.stride == "auto"


def test_long_anomaly_is_flagged_and_normal_rows_are_not(fitted):
    detector, data, _, span = fitted
    out = detector.score(data)
    flags = out["is_anomaly"].to_numpy()
    assert flags[560:700].mean() > 0.9  # the plateau stays flagged to its end
    assert flags[801:813].all()  # the spike (its first row is diluted by the windows before it) and padding
    assert not flags[NORMAL:540].any()
    events = detector.events(out)
    assert len(events) == 2 and events["start"].iloc[0] <= data.index[560]


def test_ten_chunks_equal_one_call_flags_and_events(fitted):
    detector, data, _, span = fitted
    whole = detector.score(data)
    saved, parts = None, []
    for end in np.linspace(NORMAL // 2, N, 10).astype(int):
        new, saved = score_causal(detector, data.iloc[:end], saved)
        parts.append(new)
    merged = pd.concat(parts)
    merged = merged[~merged.index.duplicated(keep="last")]  # a later chunk re-flags the rows after its checkpoint
    assert merged.index.equals(whole.index[whole["score"].notna()])
    kept = whole.loc[merged.index]
    assert np.array_equal(merged["is_anomaly"].to_numpy(), kept["is_anomaly"].to_numpy())
    np.testing.assert_allclose(merged["score"], kept["score"], rtol=1e-6)
    np.testing.assert_allclose(merged["threshold"], kept["threshold"], rtol=1e-6)
    pd.testing.assert_frame_equal(detector.events(merged), detector.events(whole), check_exact=False, rtol=1e-6)


def test_appending_rows_never_changes_a_final_flag(fitted):
    detector, data, _, span = fitted
    full = detector.score(data)["is_anomaly"].to_numpy()
    for end in (NORMAL + 100, 560, 620, 700, 805):
        part = detector.score(data.iloc[:end])["is_anomaly"].to_numpy()
        final = end - span  # rows whose every window is already in the prefix
        assert np.array_equal(part[:final], full[:final]), end


def test_incremental_database_runs_equal_one_call(fitted, tmp_path):
    detector, data, folder, span = fitted
    db = tmp_path / "results.db"
    whole = detector.score(data)
    for end in (500, 560, 640, 700, 780, 810, N):
        data.iloc[:end].reset_index().to_csv(tmp_path / "live.csv", index=False)
        result = run_job(Job(str(tmp_path / "live.csv"), str(folder / "model"), source="live"), str(db))
        assert result.status == "success", result
    from anomaly.store import open_store

    with open_store(db) as store:
        stored = store.scores("live").set_index("timestamp")
        events = store.events("live")
        at, state = store.flag_state("live", Job(str(tmp_path / "live.csv"), str(folder / "model")).model_name)
    expected = whole[whole["score"].notna()]
    assert stored.index.equals(expected.index.tz_localize(None) if expected.index.tz else expected.index)
    assert np.array_equal(stored["is_anomaly"].to_numpy(), expected["is_anomaly"].to_numpy())
    np.testing.assert_allclose(stored["threshold"], expected["threshold"], rtol=1e-6)
    found = detector.events(whole)
    assert list(events["start"]) == list(found["start"]) and list(events["end"]) == list(found["end"])
    assert at == data.index[N - span] and len(state["trail"]) <= TINY["local_trailing"]  # window - 1 rows provisional


def test_rescore_flags_from_the_start_again(fitted, tmp_path):
    detector, data, folder, span = fitted
    db = tmp_path / "results.db"
    data.reset_index().to_csv(tmp_path / "live.csv", index=False)
    job = Job(str(tmp_path / "live.csv"), str(folder / "model"), source="live")
    first = run_job(job, str(db))
    again = run_job(dataclasses.replace(job, rescore=True), str(db))
    assert first.status == again.status == "success" and again.rows_scored == first.rows_scored


def test_a_constant_sensor_is_kept_with_a_warning_and_its_change_flagged(caplog):
    data = make_data().iloc[:700].copy()
    data["valve"] = 1.0
    data.iloc[600:620, 2] = 0.0  # the sensor that never moved moves
    with caplog.at_level(logging.WARNING, logger="anomaly"):
        detector = LSTMAutoencoderDetector(**TINY).fit(data.iloc[:NORMAL])
    assert any("'valve' is constant in the normal period" in r.getMessage() for r in caplog.records)
    out = detector.score(data)
    assert out["is_anomaly"].to_numpy()[600:620].all()
    assert detector.events(out)["sensors"].str.contains("valve").any()


@pytest.fixture(scope="module")
def defaults(tmp_path_factory):
    return fit_saved("defaults", tmp_path_factory)


def test_a_model_retrained_into_the_same_folder_is_a_new_version_in_the_database(defaults, tmp_path):
    import shutil

    from anomaly.store import open_store

    detector, data, folder, _ = defaults
    model, db = tmp_path / "model", str(tmp_path / "results.db")
    shutil.copytree(folder / "model", model)
    data.iloc[:700].reset_index().to_csv(tmp_path / "live.csv", index=False)
    job = Job(str(tmp_path / "live.csv"), str(model), source="live")
    first = job.model_name
    assert run_job(job, db).status == "success"
    LSTMAutoencoderDetector(**{**detector.get_params(), "seed": 1}).fit(data.iloc[:NORMAL]).save(model)  # retrained in place
    second = job.model_name
    assert first != second and first.rsplit("@", 1)[0] == second.rsplit("@", 1)[0] == str(model.resolve())
    again = run_job(job, db)
    assert again.status == "success" and again.rows_new == again.rows_scored == 700  # all of it, for the new version
    with open_store(db) as store:
        assert store.runs()["model"].tolist() == [first, second]
        old, new = store.scores("live", first), store.scores("live", second)
        assert len(old) == len(new) == 700 and not np.allclose(old["score"], new["score"])
        assert store.flag_state("live", first) != store.flag_state("live", second)
