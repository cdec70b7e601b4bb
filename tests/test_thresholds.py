import numpy as np
import pytest

from anomaly.errors import ConfigError, DataError
from anomaly.thresholds import fit_thresholds, ksigma_threshold, quantile_threshold


def test_quantile_threshold_ignores_nan():
    scores = np.array([np.nan, *range(101)], dtype=float)
    assert quantile_threshold(scores, 0.99) == pytest.approx(99.0)


def test_ksigma_threshold():
    scores = np.array([1.0, 3.0])
    assert ksigma_threshold(scores, 2) == pytest.approx(2.0 + 2 * 1.0)


def test_fit_thresholds_holds_every_rule():
    t = fit_thresholds(np.arange(10.0), 0.5, 1.0, "ksigma")
    assert t["rule"] == "ksigma" and set(t["values"]) == {"quantile", "ksigma", "max"}
    assert t["values"]["quantile"] == pytest.approx(4.5)


@pytest.mark.parametrize(
    "call",
    [
        lambda: quantile_threshold([1.0], 1.5),
        lambda: ksigma_threshold([1.0], -1),
        lambda: fit_thresholds([1.0], 0.9, 3, "nope"),
    ],
)
def test_bad_rule_values(call):
    with pytest.raises(ConfigError):
        call()


def test_no_finite_scores():
    with pytest.raises(DataError):
        quantile_threshold([np.nan], 0.5)
