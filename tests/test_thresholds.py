import numpy as np
import pytest

from anomaly.errors import ConfigError, DataError
from anomaly.thresholds import fit_thresholds, fixed_threshold, ksigma_threshold, quantile_threshold


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


@pytest.mark.parametrize("value", [0, 2, 0.5, np.float32(1.5), np.int64(3)])
def test_fixed_threshold_takes_finite_real_numbers_at_or_above_zero(value):
    assert fixed_threshold(value) == float(value) and type(fixed_threshold(value)) is float


@pytest.mark.parametrize("value", [-1, -0.1, np.nan, np.inf, True, np.bool_(False), "1", None, [1.0]])
def test_fixed_threshold_refuses_the_rest_with_one_message(value):
    with pytest.raises(ConfigError, match=r"^threshold must be a finite number >= 0, not "):
        fixed_threshold(value)


def test_every_way_to_give_a_threshold_uses_the_one_check(tmp_path):
    """The detector's ``threshold=``, the dashboard's Save (``update_threshold``) and a jobs file refuse
    the same values with the same words: a bool is no threshold anywhere."""
    from anomaly.artifacts import update_threshold
    from anomaly.detector import LSTMAutoencoderDetector
    from anomaly.scheduled import load_jobs

    detector = LSTMAutoencoderDetector()
    detector.model_, detector.thresholds_ = object(), {"rule": "ksigma", "values": {"ksigma": 1.0}}  # fitted enough here
    for call in (lambda: detector.threshold_for(True), lambda: update_threshold(tmp_path, True)):
        with pytest.raises(ConfigError, match="threshold must be a finite number >= 0, not True"):
            call()
    jobs = tmp_path / "jobs.toml"
    jobs.write_text("[[jobs]]\ndata = 'a.csv'\nmodel = 'm'\nthreshold = true\n")
    with pytest.raises(DataError, match="job 1: 'threshold' must be a finite number >= 0, not True"):
        load_jobs(jobs)
