"""The two baselines: fit/score interface and known answers on small generated series."""

import numpy as np
import pandas as pd
import pytest

from anomaly.errors import DataError
from anomaly.research.baselines import PCABaseline, RollingZScoreBaseline


def _frame(values: np.ndarray, start: int = 0) -> pd.DataFrame:
    values = values.reshape(len(values), -1)
    idx = pd.date_range(pd.Timestamp("2024-01-01") + pd.Timedelta(minutes=start), periods=len(values), freq="min")
    return pd.DataFrame(values, index=idx, columns=[f"s{i}" for i in range(values.shape[1])])


def test_pca_scores_a_broken_correlation_highest():
    rng = np.random.default_rng(0)
    t = rng.normal(size=600)
    normal = _frame(np.column_stack([t, 2 * t + 0.01 * rng.normal(size=600)]))
    test = normal.copy()
    test.iloc[300, 1] = -2 * test.iloc[300, 0]  # each value is plausible alone; the pair is not
    base = PCABaseline(window=1, variance=0.9).fit(normal)
    assert base.pca_.n_components_ == 1
    out = base.score(test)
    assert list(out.columns) == ["score", "error_s0", "error_s1"]
    assert int(out["score"].to_numpy().argmax()) == 300


def test_pca_lag_shrinks_with_many_sensors_and_refuses_tiny_data():
    assert PCABaseline(window=32)._lag(1) == 32 and PCABaseline(window=32)._lag(38) == 6
    with pytest.raises(DataError):
        PCABaseline(window=4).fit(_frame(np.arange(3.0)))


def test_rolling_zscore_known_value_and_jump_out_of_a_constant_stretch():
    x = np.array([0.0, 1.0] * 10 + [5.0])
    base = RollingZScoreBaseline(window=4).fit(_frame(x[:8]))
    out = base.score(_frame(x[8:], start=8))
    # trailing 4 values 0,1,0,1: mean 0.5, sample std 0.5774 -> z of 5 = 7.79, squared 60.75
    assert out["score"].iloc[-1] == pytest.approx(((5 - 0.5) / np.std([0, 1, 0, 1], ddof=1)) ** 2)
    flat = RollingZScoreBaseline(window=4).fit(_frame(np.zeros(8)))
    score = flat.score(_frame(np.array([0.0, 0.0, 3.0]), start=8))["score"].to_numpy()
    # trailing std 0 is floored at 1% of the std seen (4 zeros then 0, 0, 3): 3 / (0.01 * 1.134) squared
    assert score[0] == 0.0 and score[2] == pytest.approx((3 / (0.01 * np.std([0, 0, 0, 0, 0, 0, 3], ddof=1))) ** 2)


def test_pca_on_a_constant_sensor_scores_zero_without_warnings():
    import warnings

    frame = pd.DataFrame({"a": np.ones(200)}, index=pd.date_range("2024-01-01", periods=200, freq="min"))
    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)  # scikit-learn's 0/0 explained-variance ratio would raise here
        score = PCABaseline(window=8).fit(frame).score(frame)["score"].to_numpy()
    assert np.nanmax(score) == 0.0
