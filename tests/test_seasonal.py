"""Seasonal profiles (anomaly.seasonal) and the detector's use of them, on generated daily and weekly series."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from conftest import TINY

from anomaly import seasonal
from anomaly.detector import LSTMAutoencoderDetector
from anomaly.errors import DataError, ModelError

TEN_MIN = pd.Timedelta("10min")


def daily(days: int = 8, noise: float = 0.05, seed: int = 0, start: str = "2024-01-01", tz: str | None = None) -> pd.DataFrame:
    """Every 10 minutes: ``day`` is 1 from 09:00 to 17:00 and 0 otherwise, ``flat`` has no daily shape; both noisy."""
    index = pd.date_range(start, periods=days * 144, freq="10min", name="timestamp", tz=tz)
    rng = np.random.default_rng(seed)
    hours = index.hour + index.minute / 60
    busy = ((hours >= 9) & (hours < 17)).astype(float)
    return pd.DataFrame(
        {"day": busy + rng.normal(0, noise, len(index)), "flat": rng.normal(0, 1, len(index))},
        index=index,
    )


def test_auto_keeps_a_profile_only_where_it_predicts_held_out_days():
    profiles = seasonal.fit_profiles(daily(), "auto", TEN_MIN)
    assert list(profiles) == ["day"]
    day = profiles["day"]
    assert day.period == "day" and day.r2 > 0.95
    assert len(day.offsets) == 144 and day.offsets[0] == 0 and day.offsets[-1] == 86400 - 600
    assert np.allclose(day.levels, ((day.offsets >= 9 * 3600) & (day.offsets < 17 * 3600)).astype(float), atol=0.1)


def test_a_weekly_pattern_gets_a_week_profile():
    index = pd.date_range("2024-01-01", periods=6 * 7 * 24, freq="h", name="timestamp")  # six weeks, hourly
    weekend = (index.dayofweek >= 5).astype(float)
    frame = pd.DataFrame({"load": 3 * weekend + np.random.default_rng(0).normal(0, 0.1, len(index))}, index=index)
    profiles = seasonal.fit_profiles(frame, "auto", pd.Timedelta("1h"))
    assert profiles["load"].period == "week" and profiles["load"].r2 > 0.95
    saturday = pd.DatetimeIndex([pd.Timestamp("2030-06-01 12:00")])  # a Saturday, years later
    assert profiles["load"].at(saturday)[0] == pytest.approx(3, abs=0.2)


def test_too_few_days_leave_auto_without_a_profile_and_refuse_a_forced_one():
    short = daily(days=3)
    assert seasonal.fit_profiles(short, "auto", TEN_MIN) == {}
    assert seasonal.fit_profiles(daily(), "off", TEN_MIN) == {}
    with pytest.raises(DataError, match=r"column 'day' cover 3 day\(s\) at least half; a day profile needs 4"):
        seasonal.fit_profiles(short, "day", TEN_MIN)
    # four days touched but two covered (23:00 on the first to 01:00 on the fourth): too few
    edges = daily(days=5).loc["2024-01-01 23:00":"2024-01-04 00:50"]
    assert seasonal.fit_profiles(edges, "auto", TEN_MIN) == {}
    with pytest.raises(DataError, match=r"cover 2 day\(s\)"):
        seasonal.fit_profiles(edges, "day", TEN_MIN)
    forced = seasonal.fit_profiles(daily(), "day", TEN_MIN)
    assert set(forced) == {"day", "flat"} and forced["flat"].r2 < 0.1  # forced: kept however poor


def test_rows_too_far_apart_for_a_period_get_none():
    index = pd.date_range("2024-01-01", periods=120, freq="D", name="timestamp")  # daily rows, 17 weeks
    weekday = pd.DataFrame({"sales": (index.dayofweek < 5) * 10.0 + np.arange(120) % 3}, index=index)
    profiles = seasonal.fit_profiles(weekday, "auto", pd.Timedelta("1D"))
    assert profiles["sales"].period == "week" and len(profiles["sales"].offsets) == 7  # the weekday effect
    with pytest.raises(DataError, match="rows are 1 days 00:00:00 apart, too far for a day profile"):
        seasonal.fit_profiles(weekday, "day", pd.Timedelta("1D"))


def test_levels_are_exact_on_slots_interpolated_between_and_wrap_at_midnight():
    index = pd.date_range("2024-01-01", periods=4 * 4, freq="6h")  # slots 00, 06, 12, 18 h
    values = np.tile([1.0, 2.0, 3.0, 4.0], 4)
    profile = seasonal.fit_profiles(pd.DataFrame({"x": values}, index=index), "day", pd.Timedelta("6h"))["x"]
    at = pd.DatetimeIndex(["2031-05-05 06:00", "2031-05-05 09:00", "2031-05-05 21:00", "2031-05-06 00:00"])
    np.testing.assert_allclose(profile.at(at), [2.0, 2.5, 2.5, 1.0])


def test_remove_subtracts_only_profiled_columns_and_keeps_gaps():
    frame = daily()
    frame.iloc[5, 0] = np.nan
    profiles = seasonal.fit_profiles(frame, "auto", TEN_MIN)
    out = seasonal.remove(frame, profiles)
    assert np.isnan(out.iloc[5, 0]) and out["flat"].equals(frame["flat"])
    assert abs(out["day"].mean()) < 0.02 and out["day"].std() < 0.07
    assert seasonal.remove(frame, {}) is frame
    # a function of the timestamp alone: chunks give the rows of the whole
    pd.testing.assert_frame_equal(seasonal.remove(frame.iloc[500:700], profiles), out.iloc[500:700])


def test_profiles_follow_the_clock_of_the_models_timezone():
    """Across a daylight-saving change the busy hours stay 09-17 local: the profile is the naive one's,
    and the same instants given in UTC get the same levels."""
    local = daily(days=10, start="2024-03-25", tz="Europe/Paris")
    naive = local.tz_localize(None)
    a = seasonal.fit_profiles(local, "auto", TEN_MIN, "Europe/Paris")["day"]
    b = seasonal.fit_profiles(naive, "auto", TEN_MIN)["day"]
    np.testing.assert_array_equal(a.offsets, b.offsets)
    np.testing.assert_array_equal(a.levels, b.levels)
    utc = local.tz_convert("UTC")
    np.testing.assert_array_equal(a.at(utc.index, "Europe/Paris"), a.at(local.index, "Europe/Paris"))
    assert a.r2 > 0.95


def office_hours_in_utc(days: int = 10) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Busy 09-17 Paris time across the March daylight-saving change, and the same rows indexed in UTC
    (as a file with offsets or a trailing Z is read)."""
    local = daily(days=days, start="2024-03-25", tz="Europe/Paris")[["day"]]
    return local, local.tz_convert("UTC")


def test_a_named_timezone_reads_utc_timestamps_on_its_clock():
    """UTC's clock moves the busy hours by an hour at the change: its profile is blurred there and
    predicts held-out days worse. ``timezone`` gives the local profile back, from UTC rows."""
    local, utc = office_hours_in_utc()
    config = dict(TINY, epochs=1, seed=0)
    own = LSTMAutoencoderDetector(**config).fit(utc)
    named = LSTMAutoencoderDetector(**config, timezone="Europe/Paris").fit(utc)
    assert own.timezone_ == "UTC" and named.timezone_ == "Europe/Paris"
    expected = seasonal.fit_profiles(local, "auto", TEN_MIN, "Europe/Paris")["day"]
    np.testing.assert_array_equal(named.seasonal_["day"].levels, expected.levels)
    assert named.seasonal_["day"].r2 > 0.95 > own.seasonal_["day"].r2
    # 09:00 Paris is 08:00 UTC before the change and 07:00 after: the named zone's level is busy at both
    nine = pd.DatetimeIndex(["2024-03-28 08:05", "2024-04-02 07:05"], tz="UTC")
    np.testing.assert_allclose(named.seasonal_["day"].at(nine, named.timezone_), 1.0, atol=0.1)


def test_naive_timestamps_are_taken_as_the_named_zones_clock():
    local, _ = office_hours_in_utc()
    naive = local.tz_localize(None)
    det = LSTMAutoencoderDetector(**dict(TINY, epochs=1, seed=0), timezone="Europe/Paris").fit(naive)
    assert det.timezone_ == "Europe/Paris"
    expected = seasonal.fit_profiles(naive, "auto", TEN_MIN)["day"]
    np.testing.assert_array_equal(det.seasonal_["day"].levels, expected.levels)


def test_jittered_timestamps_stay_in_their_slot():
    frame = daily(days=8)
    jitter = np.random.default_rng(1).integers(-60, 61, len(frame))  # up to a minute either side
    frame.index = frame.index + pd.to_timedelta(jitter, unit="s")
    profile = seasonal.fit_profiles(frame, "auto", TEN_MIN)["day"]
    at = pd.DatetimeIndex(["2024-02-01 09:00", "2024-02-01 09:05", "2024-02-01 16:50", "2024-02-01 23:55"])
    np.testing.assert_allclose(profile.at(at), [1, 1, 1, 0], atol=0.1)


def test_a_period_has_at_most_max_slots():
    index = pd.date_range("2024-01-01", periods=5 * 86400 // 10, freq="10s", name="timestamp")  # 5 days, 10 s apart
    frame = pd.DataFrame(
        {"x": np.sin(2 * np.pi * index.hour / 24) + np.random.default_rng(0).normal(0, 0.01, len(index))}, index=index
    )
    profile = seasonal.fit_profiles(frame, "auto", pd.Timedelta("10s"))["x"]
    assert len(profile.offsets) == seasonal.MAX_SLOTS and profile.r2 > 0.99


# -- in the detector -------------------------------------------------------------------------


@pytest.fixture(scope="module")
def days():
    """Ten normal days, then four more of which the second keeps its night level all day (no busy hours)."""
    frame = daily(days=14)[["day"]]
    frame.iloc[11 * 144 : 12 * 144, 0] -= frame.iloc[11 * 144 : 12 * 144, 0].round()
    return frame


def test_the_detector_learns_and_uses_profiles(days):
    normal = days.iloc[: 10 * 144]
    det = LSTMAutoencoderDetector(**TINY, seed=0).fit(normal)
    assert list(det.seasonal_) == ["day"] and det.seasonal_["day"].period == "day"
    # the model sees the value less its profile, centred on the residual's mean, in units of the raw spread
    level = det.seasonal_["day"].at(days.index)
    residual = normal["day"] - det.seasonal_["day"].at(normal.index)
    assert det.scaler_.mean_[0] == pytest.approx(residual.mean())
    assert det.scaler_.scale_[0] == pytest.approx(normal["day"].std(ddof=0))
    X, values, starts = det.prepare(days)
    np.testing.assert_allclose(
        values[:, 0], (days["day"] - level - residual.mean()) / normal["day"].std(ddof=0), rtol=1e-5, atol=1e-6
    )
    # estimates are shown in the sensor's own units: the profile added back
    ours = det.score(days, reconstruct=True)
    _, recon = det.forward(values, starts, reconstruct=True)
    np.testing.assert_allclose(ours["recon_day"], det._unscale_targets(recon)[:, 0] + level, atol=1e-9)


def test_a_day_without_its_shape_scores_high_only_with_its_profile(days):
    """Every window of the flat day looks like an ordinary night: only the profile tells it apart."""
    config = dict(TINY, window=12, epochs=8, seed=0)
    flat_day = slice(11 * 144 + 9 * 6, 11 * 144 + 17 * 6)  # its busy hours, when the level should be 1
    normal_days = slice(10 * 144, 11 * 144)
    ratios = {}
    for mode in ("auto", "off"):
        scores = LSTMAutoencoderDetector(**config, seasonal=mode).fit(days.iloc[: 10 * 144]).score(days)["score"]
        ratios[mode] = scores.iloc[flat_day].mean() / scores.iloc[normal_days].mean()
    assert ratios["auto"] > 5 and ratios["auto"] > 3 * ratios["off"], ratios


def test_context_columns_never_get_a_profile(days):
    frame = days.assign(ctx=days["day"].to_numpy())  # as daily as the sensor
    det = LSTMAutoencoderDetector(**TINY, seed=0, context_columns=("ctx",)).fit(frame.iloc[: 10 * 144])
    assert list(det.seasonal_) == ["day"]


def test_a_sensor_that_only_follows_its_schedule_keeps_its_spread_and_is_not_constant(caplog):
    """Its residual is zero, yet it is scaled by the spread of its values: kept, never called constant."""
    frame = daily(days=8, noise=0.0)[["day"]].assign(other=np.random.default_rng(0).normal(0, 1, 8 * 144))
    det = LSTMAutoencoderDetector(**TINY, seed=0).fit(frame)
    assert "constant" not in caplog.text and list(det.seasonal_) == ["day"]
    assert det.scaler_.scale_[0] == pytest.approx(frame["day"].std(ddof=0)) and det.scaler_.mean_[0] == pytest.approx(
        0, abs=1e-12
    )


def test_profiles_are_saved_validated_and_loaded(days, tmp_path):
    det = LSTMAutoencoderDetector(**TINY, seed=0).fit(days.iloc[: 10 * 144])
    det.save(tmp_path / "m")
    loaded = LSTMAutoencoderDetector.load(tmp_path / "m")
    assert loaded.seasonal_.keys() == det.seasonal_.keys()
    np.testing.assert_array_equal(loaded.seasonal_["day"].levels, det.seasonal_["day"].levels)
    pd.testing.assert_frame_equal(loaded.score(days), det.score(days))

    path = tmp_path / "m" / "detector.json"
    good = json.loads(path.read_text())
    for broken in (
        {"other": good["seasonal"]["day"]},  # not a sensor of the model
        {"day": {**good["seasonal"]["day"], "period": "month"}},
        {"day": {**good["seasonal"]["day"], "offsets": good["seasonal"]["day"]["offsets"][::-1]}},
        {"day": {**good["seasonal"]["day"], "levels": good["seasonal"]["day"]["levels"][:-1]}},
        {"day": {**good["seasonal"]["day"], "offsets": [86400.0] * len(good["seasonal"]["day"]["offsets"])}},
        {"day": {**good["seasonal"]["day"], "period": ["day"]}},
        {"day": {k: v for k, v in good["seasonal"]["day"].items() if k != "r2"}},
        {"day": {**good["seasonal"]["day"], "levels": [float("nan")] * len(good["seasonal"]["day"]["levels"])}},
        {"day": {**good["seasonal"]["day"], "r2": "high"}},
        [good["seasonal"]["day"]],
    ):
        path.write_text(json.dumps({**good, "seasonal": broken}))
        with pytest.raises(ModelError, match="invalid field 'seasonal'"):
            LSTMAutoencoderDetector.load(tmp_path / "m")


@pytest.mark.parametrize("version", [1, 2])
def test_a_model_saved_by_an_older_format_loads_as_it_scored(days, tmp_path, version):
    """Format 1 had no profiles and no ``seasonal`` parameter: such a model loads with seasonal off.
    Neither it nor format 2 had the ``timezone`` parameter: they load with the timestamps' own zone."""
    det = LSTMAutoencoderDetector(**TINY, seed=0, seasonal="off" if version == 1 else "auto").fit(days.iloc[: 10 * 144])
    det.save(tmp_path / "m")
    path = tmp_path / "m" / "detector.json"
    meta = json.loads(path.read_text())
    del meta["params"]["timezone"]
    if version == 1:
        del meta["seasonal"], meta["params"]["seasonal"]
    path.write_text(json.dumps({**meta, "format_version": version}))
    old = LSTMAutoencoderDetector.load(tmp_path / "m")
    assert old.timezone is None and old.seasonal == det.seasonal and list(old.seasonal_) == list(det.seasonal_)
    pd.testing.assert_frame_equal(old.score(days), det.score(days))
