"""AER's mixture of reconstruction and regression errors (anomaly/mixture.py), on hand-computed values."""

from __future__ import annotations

import numpy as np
import pytest

from anomaly import mixture

NAN = np.nan


def parts(rec, reg) -> dict[str, np.ndarray]:
    return {"reconstruction": np.array(rec, dtype=float), "regression": np.array(reg, dtype=float)}


def test_ranges_are_per_sensor_over_rows_where_both_parts_exist():
    held = parts([[1.0, 10.0], [3.0, 30.0], [100.0, 100.0]], [[2.0, 0.5], [4.0, 1.5], [NAN, 9.0]])
    # the third row lacks a regression error for sensor 0: it teaches neither part anything
    assert mixture.part_ranges(held) == {"reconstruction": [[1.0, 10.0], [3.0, 30.0]], "regression": [[2.0, 0.5], [4.0, 1.5]]}


def test_ranges_need_one_row_with_both_parts():
    with pytest.raises(ValueError, match="no row has both"):
        mixture.part_ranges(parts([[1.0]], [[NAN]]))


def test_scaled_is_zero_at_the_low_end_one_at_the_high_end_and_never_negative():
    got = mixture.scaled(np.array([[1.0, 10.0], [3.0, 30.0], [0.0, 50.0], [NAN, 20.0]]), [[1.0, 10.0], [3.0, 30.0]])
    np.testing.assert_allclose(got, [[0.0, 0.0], [1.0, 1.0], [0.0, 2.0], [NAN, 0.5]])


def test_a_constant_part_does_not_divide_by_zero():
    assert np.isfinite(mixture.scaled(np.array([[2.0]]), [[1.0], [1.0]])).all()


RANGES = {"reconstruction": [[0.0], [2.0]], "regression": [[1.0], [5.0]]}


@pytest.mark.parametrize(
    "how,rec,reg,expected",
    [
        ("mult", 1.0, 3.0, 1.5 * 1.5 - 1),  # scaled 0.5 and 0.5
        ("mult", 4.0, 9.0, 3.0 * 3.0 - 1),  # both twice their normal range: beyond any normal row's 3
        ("mult", 2.0, NAN, 1.0),  # only a reconstruction (a series' edge): that part alone
        ("mult", NAN, 5.0, 1.0),
        ("mult", NAN, NAN, NAN),  # a gap
        ("sum", 1.0, 3.0, 0.5),
        ("sum", 4.0, 1.0, 1.0),
        ("sum", NAN, 5.0, 1.0),
        ("sum", NAN, NAN, NAN),
    ],
)
def test_join(how, rec, reg, expected):
    got = mixture.join(parts([[rec]], [[reg]]), RANGES, how)
    np.testing.assert_allclose(got, [[expected]])


def test_join_refuses_an_unknown_way():
    with pytest.raises(ValueError, match="unknown join 'max'"):
        mixture.join(parts([[1.0]], [[1.0]]), RANGES, "max")


def test_decoders_map_to_parts():
    assert [mixture.part_of(n) for n in ("backward", "reconstruction", "prediction")] == [
        "regression",
        "reconstruction",
        "regression",
    ]
