"""The sequence detector's reading of recordings (anomaly/sequences.py); its models are tested in test_detector_kinds.py."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from anomaly import LSTMSequenceDetector
from anomaly.errors import DataError

SMALL = dict(window=12, encoder_units=(4,), decoder_units=(4,), latent_dim=2, epochs=1, verbose=0)


def recordings(n: int = 12, columns=None) -> list[pd.DataFrame]:
    return [pd.DataFrame(np.random.default_rng(i).standard_normal((10, 2)), columns=columns) for i in range(n)]


def test_frames_with_default_column_names_fit_and_score_by_those_names():
    """Frames built from arrays are named 0, 1: every recording is read by the same text names."""
    det = LSTMSequenceDetector(**SMALL).fit(recordings())
    assert det.columns_ == ["0", "1"]
    scores = det.score(recordings(3))
    assert len(scores) == 3 and all(np.isfinite(s["score"]).all() for s in scores)
    named = det.score(recordings(3, columns=["0", "1"]))
    assert all(np.allclose(a["score"], b["score"]) for a, b in zip(named, scores))
    with pytest.raises(DataError, match=r"sequence 0: lacks column\(s\) '1' \(expected: 0, 1\)"):
        det.score([recordings(1)[0][[0]]])


def test_arrays_are_read_in_the_order_of_the_models_columns():
    """A model fitted on frames with columns a, b said an array of two columns "lacks column(s) 'a',
    'b'" right after checking it had two; an array's columns are the model's, in order."""
    named = recordings(columns=["a", "b"])
    det = LSTMSequenceDetector(**SMALL).fit(named)
    from_arrays = det.score([frame.to_numpy() for frame in named[:3]])
    assert all(np.allclose(a["score"], b["score"]) for a, b in zip(from_arrays, det.score(named[:3])))
    with pytest.raises(DataError, match=r"sequence 0: 3 column\(s\); the model has 2 \(a, b\)"):
        det.score([np.zeros((10, 3))])
