"""The detector end to end on generated data with known answers, and on the bundled NAB series."""

import copy
import json
import re

import numpy as np
import pandas as pd
import pytest
from conftest import FIXED, ROOT, TINY, make_series

from anomaly import load_series
from anomaly.detector import LSTMAutoencoderDetector
from anomaly.errors import ConfigError, DataError, NotFittedError
from anomaly.events import EVENT_COLUMNS


def test_constructor_stores_params_unchanged():
    det = LSTMAutoencoderDetector(window=12, encoder_units=(5, 3), quantile=0.9)
    params = det.get_params()
    assert params["window"] == 12 and params["encoder_units"] == (5, 3) and params["quantile"] == 0.9
    assert not hasattr(det, "model_")


def test_fit_returns_self_and_learns_state(series, tiny_detector):
    det = tiny_detector
    assert det.columns_ == ["s0", "s1"] and det.n_features_in_ == 2
    assert det.interval_ == pd.Timedelta("1min")
    assert set(det.thresholds_["values"]) == {"quantile", "ksigma", "max"}
    assert len(det.history_["loss"]) == 2 and "val_loss" in det.history_
    assert det.fingerprint_["rows"] == len(series)


def test_score_columns_and_threshold(series, tiny_detector):
    """By default the score is the smoothed RMS error, flagged causally (anomaly.flagging)."""
    from anomaly import flagging

    scores = tiny_detector.score(series)
    assert list(scores.columns) == ["score", "threshold", "is_anomaly", "error_s0", "error_s1"]
    assert scores.index.equals(series.index)
    raw = scores[["error_s0", "error_s1"]].mean(axis=1).to_numpy()
    expected = flagging.flag(raw, tiny_detector.flag_rule(), tiny_detector.flag_seed())
    np.testing.assert_allclose(scores["score"], expected.score)
    np.testing.assert_allclose(scores["threshold"], expected.threshold)
    assert np.array_equal(scores["is_anomaly"].to_numpy(), expected.flags)
    assert scores["is_anomaly"][scores["score"] > scores["threshold"]].all()  # (padding flags more)


def test_fixed_threshold_rule(series):
    det = LSTMAutoencoderDetector(**TINY, **FIXED).fit(series)
    scores = det.score(series)
    np.testing.assert_allclose(scores["score"], scores[["error_s0", "error_s1"]].mean(axis=1))
    assert (scores["is_anomaly"] == (scores["score"] > scores["threshold"])).all()
    np.testing.assert_allclose(scores["threshold"], det.threshold_for())


def test_threshold_overrides(series, tiny_detector):
    assert tiny_detector.score(series, threshold=1e9)["is_anomaly"].sum() == 0
    assert tiny_detector.score(series, threshold=0.0)["is_anomaly"].all()
    q = tiny_detector.threshold_for(quantile=0.5)
    assert q == pytest.approx(np.quantile(tiny_detector.normal_scores_, 0.5))


def test_rows_in_long_gaps_are_not_scored(series, tiny_detector):
    gappy = series.copy()
    gappy.iloc[100:110] = np.nan
    scores = tiny_detector.score(gappy)
    assert scores["score"].iloc[100:110].isna().all()
    assert not scores["is_anomaly"].iloc[100:110].any()
    assert scores["score"].iloc[:100].notna().all()


def test_reconstruction_in_original_units(series, tiny_detector):
    scores = tiny_detector.score(series, reconstruct=True)
    assert {"recon_s0", "recon_s1"} <= set(scores.columns)
    assert abs(scores["recon_s0"].mean() - series["s0"].mean()) < 1.0


def test_embed_one_vector_per_window(series, tiny_detector):
    vectors = tiny_detector.embed(series)
    assert len(vectors) == len(series) - TINY["window"] + 1
    assert list(vectors.columns[:2]) == ["start", "end"] and vectors.shape[1] == 2 + TINY["latent_dim"]
    assert (vectors["end"] - vectors["start"] == pd.Timedelta("1min") * (TINY["window"] - 1)).all()
    strided = copy.deepcopy(tiny_detector)
    strided.stride_ = 4  # as `stride="auto"` fits a long series: it embedded every 4th window only
    pd.testing.assert_frame_equal(strided.embed(series), vectors)


def test_same_seed_same_model(series):
    a = LSTMAutoencoderDetector(**TINY, seed=3).fit(series).score(series)
    b = LSTMAutoencoderDetector(**TINY, seed=3).fit(series).score(series)
    pd.testing.assert_frame_equal(a, b)


def test_save_load_scores_identically(series, tiny_detector, tmp_path):
    tiny_detector.save(tmp_path / "m")
    loaded = LSTMAutoencoderDetector.load(tmp_path / "m")
    assert loaded.get_params() == tiny_detector.get_params()
    pd.testing.assert_frame_equal(loaded.score(series), tiny_detector.score(series))
    assert sorted(p.name for p in (tmp_path / "m").iterdir()) == ["detector.json", "model.keras", "model.onnx"]


def test_scoring_needs_the_model_columns(series, tiny_detector):
    with pytest.raises(DataError, match="'s1'"):
        tiny_detector.score(series[["s0"]])
    reordered = series[["s1", "s0"]].assign(extra=1.0)
    pd.testing.assert_frame_equal(tiny_detector.score(reordered), tiny_detector.score(series))


def test_unfitted_detector_refuses(series):
    with pytest.raises(NotFittedError):
        LSTMAutoencoderDetector().score(series)


def test_constant_sensor_is_kept_by_default_or_refused(caplog):
    frame = make_series(300).assign(s1=5.0)
    with pytest.raises(DataError, match="'s1' is constant"):
        LSTMAutoencoderDetector(**TINY, on_constant="error").fit(frame)
    with caplog.at_level("WARNING", logger="anomaly"):
        det = LSTMAutoencoderDetector(**TINY).fit(frame)
    assert [r.getMessage().split(":")[0] for r in caplog.records] == ["sensor 's1' is constant in the normal period"]
    assert np.isfinite(det.score(frame)["score"]).all()


def test_too_few_normal_windows():
    with pytest.raises(DataError, match=r"too few normal windows to fit: 11 for training and 5 held out from 30 rows \(need"):
        LSTMAutoencoderDetector(**TINY).fit(make_series(30))
    patchy = make_series(300)
    patchy = patchy[np.arange(300) % 10 < 5]  # five rows kept, five missing (a break): again and again
    with pytest.raises(DataError, match="from 295 rows; its longest stretch without a gap is 5 rows"):
        LSTMAutoencoderDetector(**TINY).fit(patchy)


def test_series_shorter_than_a_window(tiny_detector):
    with pytest.raises(DataError, match="no complete window"):
        tiny_detector.score(make_series(5))


@pytest.mark.parametrize(
    "params",
    [
        dict(window=1),
        dict(stride=20, window=8),
        dict(dropout=1.5),
        dict(encoder_units=()),
        dict(threshold_rule="bogus"),
        dict(quantile=2.0),
    ],
)
def test_bad_hyperparameters(series, params):
    with pytest.raises(ConfigError):
        LSTMAutoencoderDetector(**{**TINY, **params}).fit(series)


def _overlapping(events: pd.DataFrame, start, end) -> pd.DataFrame:
    return events[(events["start"] <= pd.Timestamp(end)) & (events["end"] >= pd.Timestamp(start))]


def test_generated_sample_each_anomaly_found_with_its_sensor():
    """Every injected anomaly of data/sample_multivariate.csv is found and blamed on its sensor."""
    meta = json.loads((ROOT / "data" / "sample_anomalies.json").read_text())
    frame = load_series(ROOT / "data" / "sample_multivariate.csv")
    det = LSTMAutoencoderDetector(
        window=32, encoder_units=(32,), decoder_units=(32,), latent_dim=8, batch_size=32, epochs=20, merge_gap=10, verbose=0
    ).fit(frame.loc[: meta["normal_end"]])
    events = det.detect(frame)
    assert list(events.columns) == EVENT_COLUMNS
    for anomaly in meta["anomalies"]:
        hits = _overlapping(events, anomaly["start"], anomaly["end"])
        assert len(hits), f"{anomaly['kind']} not found"
        strongest = hits.sort_values("peak_score").iloc[-1]
        assert strongest["sensors"].split(";")[0] == anomaly["sensor"], (anomaly, strongest.to_dict())


def test_reflag_recomputes_flags_from_the_error_columns(series, tiny_detector):
    import copy

    scores = tiny_detector.score(series)
    pd.testing.assert_frame_equal(tiny_detector.reflag(scores), scores)
    strict = copy.copy(tiny_detector).set_params(local_k=50.0, local_cap=0.0)
    assert not strict.reflag(scores)["is_anomaly"].any()
    with pytest.raises(ConfigError, match="fixed-threshold model only"):
        tiny_detector.reflag(scores, threshold=1.0)
    # a fixed-threshold model with the default root score and padding: its own rule at another value
    fixed = copy.copy(tiny_detector).set_params(local_rule=None)
    own = fixed.score(series)
    pd.testing.assert_frame_equal(fixed.reflag(own, threshold=fixed.threshold_for()), own)
    higher = fixed.reflag(own, threshold=4 * fixed.threshold_for())
    np.testing.assert_allclose(higher["threshold"], 2 * np.sqrt(fixed.threshold_for()))  # compared as a root
    assert higher["is_anomaly"].sum() <= own["is_anomaly"].sum()


# -- frames as analysts build them in pandas ----------------------------------------------------
def test_rows_dropped_from_the_frame_score_as_a_break_not_as_neighbours(series, tiny_detector):
    """``df.dropna()`` leaves a hole in the index: no window may run across it (as across NaN rows);
    up to 3 missing points are interpolated, as the file loader does."""
    holed = series.drop(series.index[[100, 101, *range(200, 230)]])
    scores = tiny_detector.score(holed)
    assert scores.index.equals(series.index)  # back on the model's one-minute grid
    assert scores["score"].iloc[200:230].isna().all() and not scores["is_anomaly"].iloc[200:230].any()
    as_file = series.copy()
    as_file.iloc[200:230] = np.nan
    as_file.iloc[[100, 101]] = (
        (as_file.iloc[99].to_numpy() * 2 + as_file.iloc[102].to_numpy()) / 3,
        (as_file.iloc[99].to_numpy() + as_file.iloc[102].to_numpy() * 2) / 3,
    )
    pd.testing.assert_frame_equal(scores, tiny_detector.score(as_file))
    # estimator-style outputs stay aligned with the rows given
    assert len(tiny_detector.decision_function(holed)) == len(tiny_detector.predict(holed)) == len(holed)
    np.testing.assert_array_equal(tiny_detector.decision_function(holed), scores["score"].reindex(holed.index))


def test_rows_at_another_rate_are_refused_and_jittered_rows_read_as_they_are(series, tiny_detector):
    with pytest.raises(DataError, match="rows are 2min apart, but the model's step is 1min; filling in"):
        tiny_detector.score(series.iloc[::2])
    # Finer rows were read as one step each: a 1-minute window covered 30 s. The hint works as written.
    fine = series.resample("30s").interpolate()
    with pytest.raises(
        DataError,
        match=re.escape(
            "rows are 30s apart, but the model's step is 1min; average them into it first: frame.resample('1min').mean()"
        ),
    ):
        tiny_detector.score(fine)
    assert tiny_detector.score(fine.resample("1min").mean()).index.equals(series.index)
    jitter = pd.to_timedelta(np.random.default_rng(0).integers(-2, 3, len(series)), unit="s")
    jittered = series.set_axis(series.index + jitter)  # a clock a second or two off: one row per step
    det = LSTMAutoencoderDetector(**TINY).fit(jittered.iloc[:300])
    assert det.interval_ == pd.Timedelta("1min")
    assert det.score(jittered).index.equals(jittered.index)


def test_daily_data_across_daylight_saving_keep_a_one_day_interval(series):
    days = series.set_axis(pd.date_range("2024-01-01", periods=len(series), freq="D", tz="Europe/Berlin"))
    assert LSTMAutoencoderDetector(**TINY).fit(days).interval_ == pd.Timedelta("1D")  # not 23 h 53 min 20 s


def test_integer_bool_and_unnamed_columns_and_infinite_values(series, tiny_detector, caplog):
    """Columns named 0, 1 (a frame built from an array), a bool sensor, and inf read as missing."""
    unnamed = pd.DataFrame(series.to_numpy(), index=series.index)
    det = LSTMAutoencoderDetector(**TINY).fit(unnamed.iloc[:300])
    assert det.columns_ == ["0", "1"]
    assert det.score(unnamed)["score"].notna().sum() > 300
    flagged = series.assign(valve=series["s0"] > 0)
    assert LSTMAutoencoderDetector(**TINY).fit(flagged.iloc[:300]).columns_ == ["s0", "s1", "valve"]
    broken = series.copy()
    broken.iloc[250, 1] = np.inf
    with caplog.at_level("WARNING", logger="anomaly"):
        scores = tiny_detector.score(broken)
    assert "1 infinite value(s) treated as missing" in caplog.text
    assert np.isnan(scores["score"].iloc[250]) and scores["score"].iloc[:240].notna().all()
    for twins in (series.assign(**{"0": 1.0}).rename(columns={"s0": 0}), pd.concat([series, series["s1"]], axis=1)):
        with pytest.raises(DataError, match=r"column names repeat \(as text\): (0, '0'|'s1', 's1')$"):
            tiny_detector.score(twins)


def test_a_time_zone_from_dateutil_is_saved_by_its_name(series, tmp_path):
    import dateutil.tz

    berlin = series.tz_localize("UTC").tz_convert(dateutil.tz.gettz("Europe/Berlin"))
    det = LSTMAutoencoderDetector(**TINY, seasonal="off").fit(berlin)
    assert det.timezone_ == "Europe/Berlin"
    det.save(tmp_path / "m")
    assert LSTMAutoencoderDetector.load(tmp_path / "m").timezone_ == "Europe/Berlin"


def test_a_value_whose_variance_overflows_is_named(series):
    huge = series.copy()
    huge.iloc[10, 1] = 1e300
    with pytest.raises(DataError, match="column 's1': values too large to scale"):
        LSTMAutoencoderDetector(**TINY).fit(huge)
