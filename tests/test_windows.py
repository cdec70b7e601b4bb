import numpy as np
import pytest

from anomaly.windows import OverlapMean, batched, gather, segments, window_starts


def test_segments_are_runs_between_breaks():
    mask = np.array([1, 1, 0, 1, 1, 1, 0, 0, 1], dtype=bool)
    assert segments(mask) == [(0, 2), (3, 6), (8, 9)]


def test_window_starts_skip_breaks_and_cover_tail():
    mask = np.ones(12, dtype=bool)
    mask[5] = False  # segments [0, 5) and [6, 12)
    assert window_starts(mask, 3, 1).tolist() == [0, 1, 2, 6, 7, 8, 9]
    # stride 2 steps inside each segment and always ends on the last possible start
    assert window_starts(mask, 3, 2).tolist() == [0, 2, 6, 8, 9]


def test_window_starts_none_when_segments_short():
    assert window_starts(np.array([1, 1, 0, 1, 1], dtype=bool), 3).size == 0


def test_window_starts_reject_bad_sizes():
    with pytest.raises(ValueError):
        window_starts(np.ones(5, dtype=bool), 0)


def test_gather_shapes_and_values():
    values = np.arange(20, dtype=np.float32).reshape(10, 2)
    out = gather(values, np.array([0, 3]), 4)
    assert out.shape == (2, 4, 2)
    np.testing.assert_array_equal(out[1], values[3:7])


def test_batched_slices():
    assert [b.tolist() for b in batched(np.arange(5), 2)] == [[0, 1], [2, 3], [4]]


def test_overlap_mean_averages_covering_windows():
    acc = OverlapMean(5, 1)
    starts = np.array([0, 2])
    acc.add(starts, np.array([[[1.0], [1.0], [1.0]], [[3.0], [3.0], [3.0]]]))
    np.testing.assert_allclose(acc.mean()[:, 0], [1.0, 1.0, 2.0, 3.0, 3.0])


def test_overlap_mean_uncovered_rows_are_nan():
    acc = OverlapMean(4, 2)
    acc.add(np.array([0]), np.ones((1, 2, 2)))
    assert np.isnan(acc.mean()[2:]).all() and (acc.mean()[:2] == 1).all()


def test_overlap_median_takes_the_median_of_covering_windows():
    from anomaly.windows import OverlapMedian

    acc = OverlapMedian(5, 1)
    # three windows of 3 rows at 0, 1, 2 (one batch), then a fourth at 2 in a second batch
    acc.add(np.array([0, 1, 2]), np.array([[[1.0]] * 3, [[5.0]] * 3, [[2.0]] * 3]))
    acc.add(np.array([2]), np.array([[[100.0]] * 3]))
    # row 0: [1]; row 1: [1, 5]; row 2: [1, 5, 2, 100]; row 3: [5, 2, 100]; row 4: [2, 100]
    np.testing.assert_allclose(acc.median()[:, 0], [1.0, 3.0, 3.5, 5.0, 51.0])
    assert acc.count.tolist() == [1, 2, 4, 3, 2]


def test_overlap_median_uncovered_rows_are_nan_and_lengths_skip_padding():
    from anomaly.windows import OverlapMedian

    acc = OverlapMedian(4, 2)
    acc.add(np.array([0]), np.full((1, 3, 2), 7.0), lengths=np.array([2]))
    out = acc.median()
    assert (out[:2] == 7).all() and np.isnan(out[2:]).all()
