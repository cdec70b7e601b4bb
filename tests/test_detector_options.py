"""Detector options: ``overlap`` (median of overlapping estimates), ``context_columns`` (inputs only), ``normalize_errors``, ``local_cap``, ``trim``."""

import numpy as np
import pandas as pd
import pytest
from conftest import FIXED, TINY, make_series

from anomaly.detector import LSTMAutoencoderDetector
from anomaly.errors import ConfigError, DataError
from anomaly.windows import gather, window_starts


@pytest.fixture(scope="module")
def median_detector(series):
    return LSTMAutoencoderDetector(**TINY, overlap="median").fit(series)


def test_median_overlap_is_the_squared_error_of_the_median_reconstruction(series, median_detector):
    det = median_detector
    values = det._scale(series)
    starts = window_starts(np.ones(len(series), bool), det.window, det.stride_)
    recon = np.asarray(det.model_(gather(values, starts, det.window)))  # (n_windows, window, 2)
    # by hand: every estimate of row r is recon[i, r - starts[i]] for the windows i covering r
    expected = np.empty((len(series), 2))
    for r in range(len(series)):
        covering = [i for i, s in enumerate(starts) if s <= r < s + det.window]
        expected[r] = np.median(np.stack([recon[i, r - starts[i]] for i in covering]), axis=0)
    scores = det.score(series, reconstruct=True)
    np.testing.assert_allclose(scores[["error_s0", "error_s1"]].to_numpy(), (expected - values) ** 2, rtol=1e-4, atol=1e-6)
    unscaled = expected * det.scaler_.scale_ + det.scaler_.mean_
    np.testing.assert_allclose(scores[["recon_s0", "recon_s1"]].to_numpy(), unscaled, rtol=1e-4, atol=1e-5)


def test_median_and_mean_differ_and_median_is_saved(series, tiny_detector, median_detector, tmp_path):
    # tiny_detector: same settings and seed, so the same weights; only the joining of estimates differs
    np.testing.assert_array_equal(tiny_detector.model_.get_weights()[0], median_detector.model_.get_weights()[0])
    a, b = tiny_detector.score(series)["score"].to_numpy(), median_detector.score(series)["score"].to_numpy()
    assert not np.allclose(a, b)
    # on this data the squared error of the median estimate is lower on average (outlying estimates stop counting)
    assert b.mean() < a.mean()
    median_detector.save(tmp_path / "m")
    loaded = LSTMAutoencoderDetector.load(tmp_path / "m")
    assert loaded.overlap == "median"
    pd.testing.assert_frame_equal(loaded.score(series), median_detector.score(series))


def _with_context(n=400):
    frame = make_series(n, 1)
    frame["cmd"] = (np.arange(n) // 50 % 2).astype(float)  # a 0/1 flag the sensor does not follow
    return frame


@pytest.fixture(scope="module")
def context_detector():
    return LSTMAutoencoderDetector(**TINY, **FIXED, context_columns=("cmd",)).fit(_with_context())


def test_context_columns_are_inputs_not_targets(context_detector, tmp_path):
    det = context_detector
    assert det.columns_ == ["s0", "cmd"] and det.target_columns_ == ["s0"]
    assert tuple(det.model_.input_shape) == (None, TINY["window"], 2)
    assert tuple(det.model_.output_shape) == (None, TINY["window"], 1)
    frame = _with_context()
    scores = det.score(frame, reconstruct=True)
    assert list(scores.columns) == ["score", "threshold", "is_anomaly", "error_s0", "recon_s0"]
    np.testing.assert_allclose(scores["score"], scores["error_s0"])
    assert det.error_ref_.shape == (1,)
    # the flag is read: changing it changes the sensor's error, though the flag itself is never scored
    flipped = frame.assign(cmd=1.0 - frame["cmd"])
    assert not np.allclose(det.score(flipped)["error_s0"], scores["error_s0"])
    # an anomaly in the sensor is found and named
    spiked = frame.copy()
    spiked.iloc[200:210, 0] += 4.0
    events = det.detect(spiked)
    assert len(events) >= 1 and events["sensors"].str.contains("s0").all()
    det.save(tmp_path / "c")
    loaded = LSTMAutoencoderDetector.load(tmp_path / "c")
    assert loaded.context_columns == ("cmd",)
    pd.testing.assert_frame_equal(loaded.score(frame), det.score(frame))


def test_context_columns_checked():
    frame = _with_context()
    with pytest.raises(DataError, match="'nope'"):
        LSTMAutoencoderDetector(**TINY, context_columns=("nope",)).fit(frame)
    with pytest.raises(DataError, match="every column is a context column"):
        LSTMAutoencoderDetector(**TINY, context_columns=("s0", "cmd")).fit(frame)
    with pytest.raises(ConfigError, match="conditional"):
        LSTMAutoencoderDetector(**TINY, context_columns=("cmd",), conditional=True).fit(frame)
    with pytest.raises(ConfigError, match="context_columns must be a list"):
        LSTMAutoencoderDetector(**TINY, context_columns="cmd").fit(frame)
    with pytest.raises(ConfigError, match="overlap"):
        LSTMAutoencoderDetector(**TINY, overlap="mode").fit(frame)


def test_normalize_errors_weighs_each_sensor_by_its_normal_error(series):
    det = LSTMAutoencoderDetector(**TINY, **FIXED, normalize_errors=True).fit(series)
    scores = det.score(series)
    errors = scores[["error_s0", "error_s1"]].to_numpy()
    np.testing.assert_allclose(scores["score"], (errors / det.error_ref_).mean(axis=1))
    # on the held-out normal windows each sensor's normalised error averages 1, so the normal scores do too
    assert det.normal_scores_.mean() == pytest.approx(1.0, rel=1e-6)
    with pytest.raises(ConfigError, match="normalize_errors"):
        LSTMAutoencoderDetector(**TINY, normalize_errors="yes").fit(series)


def test_local_cap_flags_a_level_shift_that_fills_half_the_batch(series, tmp_path):
    # Fitted on normal sines; then half the scored batch sits 5 units up. Mean + 4 std over sliding
    # thirds of the batch cannot flag the middle of so long a shift; 3x the largest normal score can.
    det = LSTMAutoencoderDetector(**TINY, **{**FIXED, "local_rule": "ksigma", "root_score": True}).fit(series)
    shifted = make_series(1200, seed=1)
    shifted.iloc[600:] += 5.0
    alone = det.score(shifted)["is_anomaly"].to_numpy()
    assert not alone[700:1100].any()
    det.set_params(local_cap=3.0)
    out = det.score(shifted)
    assert out["is_anomaly"].to_numpy()[600 + det.window :].all()
    assert out["threshold"].max() == pytest.approx(3.0 * np.sqrt(det.normal_scores_.max()))
    det.save(tmp_path / "m")
    again = LSTMAutoencoderDetector.load(tmp_path / "m")
    assert again.local_cap == 3.0
    np.testing.assert_array_equal(again.score(shifted)["is_anomaly"].to_numpy(), out["is_anomaly"].to_numpy())
    for bad in (-1.0, float("nan"), True, "3"):
        with pytest.raises(ConfigError, match="local_cap"):
            LSTMAutoencoderDetector(**TINY, local_cap=bad).fit(series)


def test_incremental_scoring_refuses_batch_relative_post_processing(series):
    from anomaly.incremental import score_rows

    det = LSTMAutoencoderDetector(**TINY, local_rule="ksigma", local_cap=3.0).fit(series)
    rows = np.ones(len(series), dtype=bool)
    with pytest.raises(ConfigError, match="local_rule 'ksigma' judges each row against the batch"):
        score_rows(det, series, rows)
    # local_rule None with the default padding and root score: the message names them and the way out
    det.set_params(local_rule=None)
    with pytest.raises(
        ConfigError, match=r"flagging \(events padded by 100 rows on both sides; the root score.*--event-padding 0"
    ):
        score_rows(det, series, rows)
    plain = det.set_params(event_padding=0, root_score=False)
    assert len(score_rows(plain, series, rows)) == len(series)
    # A fixed threshold given at scoring time means the same thing for a few rows as for all of them.
    fixed = score_rows(det, series, rows, threshold=1.0)
    full = det.score(series, threshold=1.0)
    np.testing.assert_allclose(fixed["score"].to_numpy(), full["score"].to_numpy()[-len(fixed) :], rtol=1e-6)
    # Rows dropped from the frame are put back on the grid to be scored (as in a full score); the mask
    # stays the caller's: one flag per row given, and only those rows come back.
    holed = series.drop(series.index[300:302])
    some = np.zeros(len(holed), dtype=bool)
    some[290:320] = True
    part = score_rows(det, holed, some, threshold=1.0)
    assert part.index.equals(holed.index[290:320])
    whole = det.score(holed, threshold=1.0)
    np.testing.assert_allclose(part["score"].to_numpy(), whole.loc[part.index, "score"].to_numpy(), rtol=1e-6)


# -- trim: a second fit without the windows the first rebuilt worst ---------------------------


def shift_inside_normal(n: int = 4000) -> pd.DataFrame:
    """A noisy sine with its level raised by 1.5 on rows 1500-1559: an anomaly inside the normal period."""
    t = np.arange(n)
    values = np.sin(2 * np.pi * t / 50) + np.random.default_rng(0).normal(0, 0.05, n)
    values[1500:1560] += 1.5
    return pd.DataFrame({"a": values}, index=pd.date_range("2024-01-01", periods=n, freq="1min", name="timestamp"))


TRIM_CONFIG = dict(window=32, encoder_units=(16,), decoder_units=(16,), latent_dim=8, epochs=8, batch_size=32, verbose=0, seed=0)


def test_trim_drops_exactly_the_windows_rebuilt_worst_and_refits_on_the_rest(monkeypatch):
    X = shift_inside_normal()
    seen, fits = {}, []
    untrimmed, train_once = LSTMAutoencoderDetector._untrimmed, LSTMAutoencoderDetector._train

    def spy(self, values, train):
        seen["train"], seen["kept"] = train, untrimmed(self, values, train)
        return seen["kept"]

    def counting(self, built, n_train, *args, **kwargs):
        fits.append(n_train)
        return train_once(self, built, n_train, *args, **kwargs)

    monkeypatch.setattr(LSTMAutoencoderDetector, "_untrimmed", spy)
    monkeypatch.setattr(LSTMAutoencoderDetector, "_train", counting)
    det = LSTMAutoencoderDetector(**TRIM_CONFIG, trim=0.05, validation_fraction=0.0).fit(X)
    train, kept = seen["train"], seen["kept"]
    dropped = np.setdiff1d(train, kept)
    assert len(dropped) == int(len(train) * 0.05) and np.isin(kept, train).all() and (np.diff(kept) > 0).all()
    touching = train[(train + det.window > 1500) & (train < 1560)]
    assert np.isin(touching, dropped).all()  # every window that holds the shift is among the worst
    assert fits == [len(train), len(kept)]  # a second fit, on the kept windows only
    # no held-out windows: the normal errors come from the kept windows, so the shift's rows are not among them
    covered = np.zeros(len(X), bool)
    for start in kept:
        covered[start : start + det.window] = True
    assert not covered[1500:1560].any() and len(det.normal_errors_) == covered.sum()


def test_trim_counts_the_rows_a_prediction_estimates(monkeypatch):
    """A prediction window whose inputs are normal but whose next rows hold the shift is dropped too."""
    X = shift_inside_normal(1500)  # (its shift lies past the end: one is put inside at rows 500-529)
    X.iloc[500:530, 0] += 1.5
    seen = {}
    untrimmed = LSTMAutoencoderDetector._untrimmed

    def spy(self, values, train):
        seen["train"], seen["kept"] = train, untrimmed(self, values, train)
        return seen["kept"]

    monkeypatch.setattr(LSTMAutoencoderDetector, "_untrimmed", spy)
    config = dict(TRIM_CONFIG, window=16, epochs=10)
    det = LSTMAutoencoderDetector(**config, model_kind="prediction", horizon=8, stride=1, trim=0.1).fit(X)
    train = seen["train"]
    targets_only = train[(train + det.window <= 500) & (train + det.window + det.horizon > 500)]
    assert len(targets_only) == 8 and not np.isin(targets_only, seen["kept"]).any()


def test_trim_keeps_an_anomaly_of_the_normal_period_from_being_learned():
    X = shift_inside_normal()
    ratio = {}
    for trim in (0.0, 0.05):
        score = LSTMAutoencoderDetector(**TRIM_CONFIG, **FIXED, trim=trim).fit(X).score(X)["score"]
        ratio[trim] = score.iloc[1500:1560].mean() / score.iloc[2000:3000].mean()
    assert ratio[0.05] > 2 * ratio[0.0]  # measured: 386 against 49 (the mean squared error; 914 against 48 at 15 epochs)


def test_trim_zero_fits_once(monkeypatch):
    calls = []
    monkeypatch.setattr(LSTMAutoencoderDetector, "_untrimmed", lambda self, values, train: calls.append(1) or train)
    LSTMAutoencoderDetector(**TINY).fit(shift_inside_normal(600))
    assert calls == []


# -- the score's span grows with the fit's stride (detector.smoothing_span) -------------------------
def test_smoothing_span_is_the_span_times_the_square_root_of_the_stride():
    from anomaly.detector import smoothing_span

    assert [smoothing_span(30, s) for s in (1, 2, 4, 8)] == [30, 42, 60, 85]
    assert [smoothing_span(20, 4), smoothing_span(0, 8), smoothing_span(1, 8)] == [40, 0, 1]  # off stays off


@pytest.fixture(scope="module")
def strided_detector(series):
    return LSTMAutoencoderDetector(**TINY, stride=4, smoothing=5).fit(series)


def test_a_strided_fit_smooths_its_score_over_the_longer_span(series, strided_detector, tmp_path):
    det = strided_detector
    assert (det.stride_, det.smoothing, det.smoothing_) == (4, 5, 10)
    assert det.flag_rule().smoothing == 10
    assert "(scores smoothed over 10 rows)" in det.describe_flagging()  # what `anomaly train` and `score` print
    # the score compared is the root of the raw score, EWMA-smoothed over span 10 (not 5), carried on
    # from the held-out normal scores (anomaly.flagging.seed)
    from anomaly import flagging

    raw = det.sensor_mean(det.row_errors(det._scale(series), window_starts(np.ones(len(series), bool), 8, 4)))

    def smoothed(span):
        rule = flagging.TrailingRule(smoothing=span, root=True)
        state = flagging.seed(det.normal_errors_, rule)
        return flagging.transform(raw, rule, state.ewm_num, state.ewm_den)[0]

    scores = det.score(series)
    np.testing.assert_allclose(scores["score"].to_numpy(), smoothed(10), rtol=1e-6)
    assert not np.allclose(scores["score"].to_numpy(), smoothed(5), rtol=1e-3)
    det.save(tmp_path / "m")
    loaded = LSTMAutoencoderDetector.load(tmp_path / "m")
    assert loaded.smoothing_ == 10
    pd.testing.assert_frame_equal(loaded.score(series), scores)


def test_a_new_smoothing_on_a_fitted_detector_takes_effect_at_its_stride(series, strided_detector, tmp_path):
    strided_detector.save(tmp_path / "m")
    det = LSTMAutoencoderDetector.load(tmp_path / "m").set_params(smoothing=8)
    assert (det.smoothing_, det.flag_rule().smoothing) == (16, 16)  # 8 x sqrt(4)
    fresh = LSTMAutoencoderDetector.load(tmp_path / "m")
    reflagged = det.reflag(fresh.score(series))  # reflag reads the new span, as it reads a new k
    assert not np.allclose(reflagged["score"].to_numpy(), fresh.score(series)["score"].to_numpy())


def test_a_model_saved_before_format_4_keeps_its_span(series, strided_detector, tmp_path):
    import json

    strided_detector.save(tmp_path / "old")
    meta_path = tmp_path / "old" / "detector.json"
    meta = json.loads(meta_path.read_text())
    del meta["smoothing_span"]  # what format 3 wrote: the span was `smoothing` whatever the stride
    meta["format_version"] = 3
    meta_path.write_text(json.dumps(meta))
    loaded = LSTMAutoencoderDetector.load(tmp_path / "old")
    assert (loaded.stride_, loaded.smoothing_) == (4, 5)


def test_a_fixed_threshold_model_says_the_threshold_its_scores_are_compared_with(series):
    det = LSTMAutoencoderDetector(**{**TINY, "local_rule": None}).fit(series)
    applied = float(det.score(series)["threshold"].iloc[0])  # the root score is compared with the root of the value
    rule = det.thresholds_["rule"]
    value = det.thresholds_["values"][rule]
    assert applied == pytest.approx(np.sqrt(value)) and applied != pytest.approx(value)
    assert f"one fixed threshold, {applied:.6g} (the root of {rule} = {value:.6g})" in det.describe_flagging()
    det.set_params(root_score=False)  # the plain score: the value itself
    assert f"one fixed threshold ({rule} = {value:.6g})" in det.describe_flagging()
