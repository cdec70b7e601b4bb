"""Metrics on small hand-made cases with known answers."""

import numpy as np
import pandas as pd
import pytest

from anomaly.metrics import label_mask, overlap_segment, parse_labels, point_adjusted, pointwise, prf, weighted_segment
from anomaly.research.bench import pool

T = pd.Timestamp("2024-01-01")


def ts(i: int) -> pd.Timestamp:
    return T + pd.Timedelta(minutes=i)


def test_prf_known_values_and_undefined_cases():
    assert prf(3, 1, 2) == {"tp": 3, "fp": 1, "fn": 2, "precision": 0.75, "recall": 0.6, "f1": pytest.approx(2 / 3)}
    assert prf(0, 0, 0)["f1"] == 0.0
    assert prf(0, 5, 0)["precision"] == 0.0


def test_overlap_segment_counts_found_windows_and_false_alarms():
    labels = [(ts(10), ts(20)), (ts(50), ts(60)), (ts(90), ts(95))]
    events = [(ts(0), ts(3)), (ts(20), ts(25)), (ts(55), ts(56)), (ts(57), ts(58)), (ts(70), ts(80))]
    r = overlap_segment(events, labels)
    # window 1 touched at its last timestamp (inclusive), window 2 twice (one TP), window 3 missed;
    # events at 0-3 and 70-80 overlap nothing; the two inside window 2 are not false alarms.
    assert (r["tp"], r["fp"], r["fn"]) == (2, 2, 1)
    assert r["precision"] == pytest.approx(0.5) and r["recall"] == pytest.approx(2 / 3)
    assert r["f1"] == pytest.approx(4 / 7)


def test_overlap_segment_without_labels_or_events():
    assert overlap_segment([], [(ts(0), ts(1))])["fn"] == 1
    assert overlap_segment([(ts(0), ts(1))], [])["fp"] == 1


def test_pointwise_and_point_adjusted_on_a_small_series():
    index = pd.date_range(T, periods=20, freq="min")
    labels = [(ts(5), ts(9))]  # 5 labelled points
    flags = np.zeros(20, dtype=bool)
    flags[[7, 15]] = True
    pw = pointwise(index, flags, labels)
    assert (pw["tp"], pw["fp"], pw["fn"]) == (1, 1, 4)
    pa = point_adjusted(index, flags, labels)
    assert (pa["tp"], pa["fp"], pa["fn"]) == (5, 1, 0)  # the hit window counts as wholly found
    assert pa["f1"] == pytest.approx(10 / 11)
    assert pa["f1"] > pw["f1"]  # optimistic by construction


def test_label_mask_is_inclusive_and_parse_labels_checks_order():
    index = pd.date_range(T, periods=5, freq="min")
    assert label_mask(index, [(ts(1), ts(3))]).tolist() == [False, True, True, True, False]
    with pytest.raises(ValueError):
        parse_labels([["2024-01-02", "2024-01-01"]])
    assert parse_labels([["2024-01-01 00:01", "2024-01-01 00:02"]]) == [(ts(1), ts(2))]


def _series(tp, fp, fn, pw=(0, 0, 0), pa=(0, 0, 0), ws=(0.0, 0.0, 0.0)):
    return {
        "methods": {
            "lstm": {
                "overlap_segment": prf(tp, fp, fn),
                "weighted_segment": prf(*ws),
                "pointwise": prf(*pw),
                "point_adjusted_optimistic": prf(*pa),
                "fit_s": 1.0,
                "score_s": 0.5,
            }
        }
    }


def test_pooling_sums_counts_before_precision_recall_f1():
    # Series A: perfect on its one window; series B: 0 TP, 3 FP, 1 FN.
    pooled = pool(
        [_series(1, 0, 0, pw=(10, 0, 0), ws=(60.0, 0.0, 0.0)), _series(0, 3, 1, pw=(0, 5, 10), ws=(0.0, 30.0, 90.0))],
        methods=("lstm",),
    )["lstm"]
    seg = pooled["overlap_segment"]
    assert (seg["tp"], seg["fp"], seg["fn"]) == (1, 3, 1)
    assert seg["precision"] == pytest.approx(0.25) and seg["recall"] == pytest.approx(0.5)
    assert seg["f1"] == pytest.approx(1 / 3)  # not the mean of per-series F1 (0.5)
    assert pooled["pointwise"]["tp"] == 10 and pooled["pointwise"]["fp"] == 5 and pooled["pointwise"]["fn"] == 10
    assert pooled["weighted_segment"]["f1"] == pytest.approx(2 * 60 / (2 * 60 + 30 + 90))  # seconds pool too
    assert pooled["fit_s"] == 2.0 and pooled["score_s"] == 1.0 and pooled["series"] == 2


def test_auc_pr_ranks_the_score_against_labelled_rows():
    from anomaly.metrics import auc_pr

    index = pd.date_range("2024-01-01", periods=10, freq="h")
    labels = [(index[6], index[7])]
    perfect = np.array([0.1, 0.2, 0.1, 0.3, 0.2, 0.1, 0.9, 0.8, 0.2, np.nan])  # the NaN row is left out
    assert auc_pr(index, perfect, labels) == 1.0
    backwards = -perfect
    assert auc_pr(index, backwards, labels) == pytest.approx((1 / 8 + 2 / 9) / 2)  # found last: precision 1/8, 2/9
    assert auc_pr(index, perfect, []) is None  # nothing labelled
    assert auc_pr(index, perfect, [(index[0], index[-1])]) is None  # nothing unlabelled


def test_weighted_segment_counts_seconds_as_orion_does():
    """Orion's convention: ends + 1 s, pieces cut at every edge, an overlap longer than an instant.

    Data 0..100 s, window [10, 20], event [15, 30] -> pieces [10, 15) missed (5 s), [15, 21) found
    (6 s), [21, 31) a false alarm (10 s), the rest true negatives.
    """
    s = lambda i: T + pd.Timedelta(seconds=i)  # noqa: E731
    m = weighted_segment([(s(15), s(30))], [(s(10), s(20))], s(0), s(100))
    assert (m["tp"], m["fp"], m["fn"]) == (6.0, 10.0, 5.0)
    assert m["precision"] == pytest.approx(6 / 16) and m["recall"] == pytest.approx(6 / 11)
    # an event touching a window only at an edge overlaps it by an instant: no credit
    touch = weighted_segment([(s(21), s(25))], [(s(10), s(20))], s(0), s(100))
    assert (touch["tp"], touch["fp"], touch["fn"]) == (0.0, 5.0, 11.0)
    # zones: instants compare in UTC, whatever zone each timestamp carries
    u = lambda i: s(i).tz_localize("UTC")  # noqa: E731
    berlin = weighted_segment([(u(15).tz_convert("Europe/Berlin"), u(30))], [(u(10), u(20))], u(0), u(100))
    assert (berlin["tp"], berlin["fp"], berlin["fn"]) == (6.0, 10.0, 5.0)
    assert weighted_segment([], [], s(0), s(100)) == prf(0.0, 0.0, 0.0)
