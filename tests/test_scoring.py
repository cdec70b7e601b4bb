"""The score-frame contract (anomaly.scoring): the names every part of the package reads and writes."""

from __future__ import annotations

import numpy as np
import pandas as pd

from anomaly import scoring


def test_columns_are_made_and_read_back_in_order():
    index = pd.date_range("2024-01-01", periods=3, freq="min")
    errors = np.arange(6, dtype=float).reshape(3, 2)
    recon = errors + 10
    frame = pd.DataFrame({"score": [1.0, 2.0, 3.0], "threshold": 2.5, "is_anomaly": [False, False, True]}, index=index)
    out = scoring.add_sensor_columns(frame, ["temp", "flow"], errors, recon)
    assert list(out.columns) == [*scoring.frame_columns(["temp", "flow"]), "recon_temp", "recon_flow"]
    assert scoring.sensors_of(out) == ["temp", "flow"]
    np.testing.assert_array_equal(scoring.errors_of(out, ["flow", "temp"]), errors[:, ::-1])
    np.testing.assert_array_equal(out[scoring.recon_column("flow")], recon[:, 1])


def test_an_empty_frame_is_typed_like_a_full_one():
    empty = scoring.empty_frame(["a"], pd.date_range("2024-01-01", periods=4, freq="h"))
    assert list(empty.columns) == ["score", "threshold", "is_anomaly", "error_a"] and len(empty) == 0
    assert empty["is_anomaly"].dtype == bool and empty["score"].dtype == float
    assert isinstance(empty.index, pd.DatetimeIndex)


def test_the_detector_scores_in_the_contract(tiny_detector, series):
    scores = tiny_detector.score(series, reconstruct=True)
    sensors = list(tiny_detector.columns_)
    assert list(scores.columns) == [*scoring.frame_columns(sensors), *(scoring.recon_column(s) for s in sensors)]
    assert scoring.sensors_of(scores) == sensors
