"""The pure-numpy helpers of the model family: prediction spans, the way back to timestamps,
decoder targets, and padding of separate sequences (anomaly/windows.py)."""

from __future__ import annotations

import numpy as np
import pytest

from anomaly.windows import (
    OverlapMean,
    future_starts,
    gather,
    pad_sequences,
    reverse_steps,
    shift_right,
    span_starts,
    step_mask,
    window_starts,
)


def test_span_starts_need_window_plus_horizon_complete_rows():
    finite = np.ones(10, dtype=bool)
    finite[6] = False  # segments [0, 6) and [7, 10)
    np.testing.assert_array_equal(span_starts(finite, 3, 2), [0, 1])
    np.testing.assert_array_equal(span_starts(finite, 3, 0), window_starts(finite, 3))
    np.testing.assert_array_equal(span_starts(np.ones(9, dtype=bool), 3, 2, stride=3), [0, 3, 4])


def test_future_starts_gather_the_rows_after_each_window():
    values = np.arange(20, dtype=np.float32).reshape(10, 2)
    starts = np.array([0, 4])
    np.testing.assert_array_equal(future_starts(starts, 3), [3, 7])
    future = gather(values, future_starts(starts, 3), 2)
    assert future.shape == (2, 2, 2)
    np.testing.assert_array_equal(future[0], values[3:5])
    np.testing.assert_array_equal(future[1], values[7:9])


def test_predictions_map_back_to_the_rows_they_predict():
    # window 3, horizon 2 over 8 rows: starts 0..3 predict rows 3-4, 4-5, 5-6, 6-7.
    starts = span_starts(np.ones(8, dtype=bool), 3, 2)
    acc = OverlapMean(8, 1)
    errors = np.stack([np.full((2, 1), float(s)) for s in starts])  # each window's error = its start
    acc.add(future_starts(starts, 3), errors)
    mean = acc.mean()[:, 0]
    assert np.isnan(mean[:3]).all()  # the first window's rows are never predicted
    np.testing.assert_array_equal(acc.count, [0, 0, 0, 1, 2, 2, 2, 1])
    np.testing.assert_allclose(mean[3:], [0.0, 0.5, 1.5, 2.5, 3.0])


def test_overlap_mean_lengths_skip_padded_steps():
    acc = OverlapMean(6, 1)
    acc.add(np.array([0, 3]), np.ones((2, 3, 1)) * [[[1.0]], [[5.0]]], lengths=np.array([2, 3]))
    np.testing.assert_array_equal(acc.count, [1, 1, 0, 1, 1, 1])
    np.testing.assert_allclose(acc.mean()[:, 0], [1, 1, np.nan, 5, 5, 5])


def test_reverse_steps_reverses_only_real_steps_and_is_its_own_inverse():
    x = np.arange(12, dtype=np.float32).reshape(2, 6, 1)
    np.testing.assert_array_equal(reverse_steps(x)[0, :, 0], [5, 4, 3, 2, 1, 0])
    r = reverse_steps(x, np.array([4, 6]))
    np.testing.assert_array_equal(r[0, :, 0], [3, 2, 1, 0, 4, 5])
    np.testing.assert_array_equal(r[1, :, 0], [11, 10, 9, 8, 7, 6])
    np.testing.assert_array_equal(reverse_steps(r, np.array([4, 6])), x)


def test_shift_right_is_the_teacher_forcing_input():
    t = np.arange(1, 7, dtype=np.float32).reshape(2, 3, 1)
    s = shift_right(t)
    np.testing.assert_array_equal(s[:, :, 0], [[0, 1, 2], [0, 4, 5]])
    assert t[0, 0, 0] == 1  # the target is not modified


def test_pad_sequences_and_step_mask():
    a, b = np.ones((2, 1)), np.full((4, 1), 2.0)
    batch, lengths = pad_sequences([a, b], 5, -9.0)
    assert batch.shape == (2, 5, 1) and batch.dtype == np.float32
    np.testing.assert_array_equal(lengths, [2, 4])
    np.testing.assert_array_equal(batch[0, :, 0], [1, 1, -9, -9, -9])
    np.testing.assert_array_equal(step_mask(lengths, 5), [[1, 1, 0, 0, 0], [1, 1, 1, 1, 0]])
    with pytest.raises(ValueError, match="more than 3"):
        pad_sequences([b], 3, 0.0)


def test_gather_of_a_window_and_its_future_is_one_span():
    values = np.random.default_rng(0).normal(size=(30, 3)).astype(np.float32)
    starts = span_starts(np.ones(30, dtype=bool), 5, 4, stride=2)
    both = np.concatenate([gather(values, starts, 5), gather(values, future_starts(starts, 5), 4)], axis=1)
    np.testing.assert_array_equal(both, gather(values, starts, 9))
