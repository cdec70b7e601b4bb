"""Windowed scoring in batches gives what scoring all windows at once gives.

The reference is built from the Keras model directly: every window materialised, one model call,
squared errors averaged per timestamp with an explicit loop. The batched paths (``Predictor`` with
several batch sizes, plain and XLA, and ``LSTMAutoencoderDetector.score``) must match it, including
batch sizes that do not divide the number of windows and series with a break.
"""

from __future__ import annotations

import copy
import re

import numpy as np
import pandas as pd
import pytest

from anomaly.detector import LSTMAutoencoderDetector
from anomaly.model import Predictor
from anomaly.windows import OverlapMean, batched, gather, window_starts

WINDOW = 8


def _frame(n: int = 600, n_sensors: int = 2, gap: tuple[int, int] | None = (300, 310)) -> pd.DataFrame:
    t = np.arange(n)
    rng = np.random.default_rng(3)
    data = {f"s{i}": np.sin(2 * np.pi * t / (40 + 7 * i)) + 0.05 * rng.standard_normal(n) for i in range(n_sensors)}
    frame = pd.DataFrame(data, index=pd.date_range("2024-01-01", periods=n, freq="1min"))
    if gap is not None:
        frame.iloc[gap[0] : gap[1], 0] = np.nan  # a break: no window spans it
    return frame


@pytest.fixture(scope="module")
def detector() -> LSTMAutoencoderDetector:
    det = LSTMAutoencoderDetector(
        window=WINDOW,
        encoder_units=(8,),
        decoder_units=(8,),
        latent_dim=4,
        epochs=1,
        batch_size=32,
        verbose=0,
        seed=1,
        local_rule=None,
        root_score=False,
        smoothing=0,
        event_padding=0,
        local_cap=0.0,
    )  # the plain score: the mean squared error
    return det.fit(_frame(gap=None).iloc[:400])


def _reference_row_errors(det: LSTMAutoencoderDetector, frame: pd.DataFrame) -> np.ndarray:
    """Per-row, per-sensor mean squared error with all windows at once, from the model directly."""
    values = det._scale(frame[det.columns_])
    starts = window_starts(np.isfinite(values).all(axis=1), WINDOW)
    windows = np.stack([values[s : s + WINDOW] for s in starts])  # every window materialised
    errors = (np.asarray(det.model_(windows, training=False)) - windows) ** 2
    total = np.zeros(values.shape)
    count = np.zeros(len(values))
    for s, err in zip(starts, errors):
        total[s : s + WINDOW] += err
        count[s : s + WINDOW] += 1
    with np.errstate(invalid="ignore"):
        out = total / count[:, None]
    out[count == 0] = np.nan
    return out


@pytest.mark.parametrize("batch_size", [1, 7, 50, 100, 1024])
def test_predictor_batches_equal_one_call(detector, batch_size):
    values = detector._scale(_frame()[detector.columns_])
    starts = window_starts(np.isfinite(values).all(axis=1), WINDOW)
    windows = gather(values, starts, WINDOW)
    assert len(windows) % 7 and len(windows) % 50 and len(windows) % 100  # sizes that do not divide it
    expected = np.asarray(detector.model_(windows, training=False))
    predictor = Predictor(detector.model_, batch_size=batch_size)
    got = np.concatenate([predictor(gather(values, b, WINDOW)) for b in batched(starts, batch_size)])
    np.testing.assert_allclose(got, expected, rtol=0, atol=1e-6)
    assert predictor(windows[:0]).shape == (0, WINDOW, 2)


@pytest.mark.parametrize("batch_size", [64, 100])
def test_xla_predictor_equals_model(detector, batch_size):
    values = detector._scale(_frame()[detector.columns_])
    windows = gather(values, window_starts(np.isfinite(values).all(axis=1), WINDOW), WINDOW)
    predictor = Predictor(detector.model_, batch_size=batch_size, xla_min_windows=0).plan(len(windows))
    assert predictor.use_xla
    got = predictor(windows)
    np.testing.assert_allclose(got, np.asarray(detector.model_(windows, training=False)), rtol=0, atol=1e-5)
    assert predictor.plan(len(windows) - 1).use_xla and not Predictor(detector.model_).plan(10).use_xla


def test_last_partial_batch_is_padded_not_retraced(detector):
    values = detector._scale(_frame()[detector.columns_])
    starts = window_starts(np.isfinite(values).all(axis=1), WINDOW)
    predictor = Predictor(detector.model_, batch_size=100)
    for b in batched(starts, 100):  # the last batch is shorter than 100
        predictor(gather(values, b, WINDOW))
    assert predictor._sizes[False] == {100}
    assert predictor._fn(False).experimental_get_tracing_count() == 1
    small = Predictor(detector.model_, batch_size=1024)
    small(gather(values, starts[:37], WINDOW))  # a short input pads to the next power of two
    assert small._sizes[False] == {64}


@pytest.mark.parametrize("batch_size", [1, 5, 64, 333, 4096])
def test_detector_scores_in_batches_equal_all_at_once(detector, batch_size):
    frame = _frame()
    expected = _reference_row_errors(detector, frame)
    detector._predictor_cache = Predictor(detector.model_, batch_size=batch_size)
    try:
        scores = detector.score(frame)
    finally:
        detector._predictor_cache = None
    got = scores[[f"error_{c}" for c in detector.columns_]].to_numpy()
    np.testing.assert_array_equal(np.isnan(got), np.isnan(expected))
    assert np.isnan(got[300:310]).all() and np.isfinite(got[:300]).all()
    np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-7)
    np.testing.assert_allclose(scores["score"].to_numpy(), expected.mean(axis=1), rtol=1e-5, atol=1e-7)


def test_predictor_is_remade_for_a_new_model(detector):
    first = detector._predictor()
    assert detector._predictor() is first
    clone = LSTMAutoencoderDetector(**detector.get_params())
    clone.model_ = detector.model_
    clone._predictor_cache = first
    assert clone._predictor() is first
    clone.model_ = object()  # stands for a model trained again: the cached predictor must not be reused
    assert clone._predictor() is not first


@pytest.mark.parametrize("batch_size", [1, 3, 50])
def test_overlap_mean_matches_loop(batch_size):
    rng = np.random.default_rng(0)
    starts = np.array([0, 1, 2, 5, 9, 10, 11, 30])
    values = rng.standard_normal((len(starts), 4, 3))
    acc = OverlapMean(40, 3)
    for i in range(0, len(starts), batch_size):
        acc.add(starts[i : i + batch_size], values[i : i + batch_size])
    total, count = np.zeros((40, 3)), np.zeros(40)
    for s, v in zip(starts, values):
        total[s : s + 4] += v
        count[s : s + 4] += 1
    expected = np.full((40, 3), np.nan)
    expected[count > 0] = total[count > 0] / count[count > 0, None]
    np.testing.assert_allclose(acc.mean(), expected)


def test_overlap_mean_consumed_in_place_equals_mean():
    rng = np.random.default_rng(1)
    starts = np.array([0, 2, 3, 12])
    acc = OverlapMean(20, 2)
    acc.add(starts, rng.standard_normal((4, 5, 2)))
    expected = acc.mean()
    got = acc.mean(consume=True)
    assert got is acc.total  # no second array of the series' length
    np.testing.assert_array_equal(np.isnan(got), np.isnan(expected))
    np.testing.assert_allclose(got[~np.isnan(got)], expected[~np.isnan(expected)])


def test_scaling_in_blocks_equals_scaling_at_once(detector, monkeypatch):
    import anomaly.base as base_module
    from anomaly.errors import DataError

    frame = _frame(301, gap=None)
    whole = detector._scale(frame)
    monkeypatch.setattr(base_module, "SCALE_BLOCK", 7)
    np.testing.assert_array_equal(detector._scale(frame), whole)
    frame.iloc[250, 1] = 1e300  # finite in float64, not once scaled to float32: found in a later block
    with pytest.raises(DataError, match=f"column 's1' at {frame.index[250]}: value 1e\\+300 is too large to score"):
        detector._scale(frame)
    frame.iloc[250, 1] = 9.9e37  # an overload code: finite in float32, but its squared error is not
    with pytest.raises(
        DataError,
        match=re.escape(
            f"column 's1' at {frame.index[250]}: value 9.9e+37 is too large to score (a logger's code for no reading? "
            "read it as missing with --missing-values, or leave the cell empty)"
        ),
    ):
        detector.score(frame)
    coded = copy.copy(detector)
    coded.reading_ = {"timestamp_col": "timestamp", "duplicates": "error", "max_gap": 3, "missing_values": [-9999.0]}
    with pytest.raises(DataError, match=re.escape("cell empty; list the model's codes too (-9999): codes given replace them)")):
        coded.score(frame)  # the codes a user gives replace the model's: the hint says which to keep
