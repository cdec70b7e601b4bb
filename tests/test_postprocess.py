"""Post-processing rules and the relative thresholds on hand-made arrays with known answers."""

import numpy as np
import pytest

from anomaly import postprocess as pp
from anomaly.thresholds import dynamic_threshold, pot_threshold


def test_sliding_windows_cover_the_series_and_end_at_n():
    assert pp.sliding_windows(10, 4, 3) == [(0, 4), (3, 7), (6, 10)]
    assert pp.sliding_windows(10, 4, 4) == [(0, 4), (4, 8), (6, 10)]
    assert pp.sliding_windows(3, 5, 1) == [(0, 3)]


def test_pad_runs_widens_clips_and_merges():
    assert pp.pad_runs([(2, 3), (8, 8), (15, 19)], 2, 20) == [(0, 10), (13, 19)]
    assert pp.pad_runs([(2, 3)], 0, 20) == [(2, 3)]


def test_prune_runs_keeps_peaks_clearly_above_the_next():
    score = np.zeros(30)
    score[[2, 10, 20]] = [10.0, 9.5, 5.0]
    score[25] = 4.8  # highest unflagged point
    flags = np.zeros(30, dtype=bool)
    flags[[2, 10, 20]] = True
    runs = [(2, 2), (10, 10), (20, 20)]
    # sorted peaks 10, 9.5, 5, then 4.8: drops 5%, 47%, 4%; the last drop >= 13% is after 9.5.
    assert pp.prune_runs(score, runs, flags, 0.13) == [(2, 2), (10, 10)]
    assert pp.prune_runs(score, runs, flags, 0.0) == runs
    assert pp.prune_runs(score, runs, flags, 0.6) == []


def test_local_thresholds_take_the_lowest_covering_window():
    score = np.concatenate([np.zeros(50), np.ones(50)])
    limit = pp.local_thresholds(score, "ksigma", window_frac=0.5, step_frac=0.5, min_window=1, k=1.0)
    assert limit[:50] == pytest.approx(np.zeros(50))  # window of zeros: mean 0 + 1*0
    assert limit[50:] == pytest.approx(np.ones(50))


def test_flag_scores_finds_a_spike_and_pads_it():
    rng = np.random.default_rng(0)
    score = np.abs(rng.normal(0, 1, 1000))
    score[500:503] = 20.0
    _, limit, flags = pp.flag_scores(score, rule="ksigma", k=4.0, pad=5, prune=0.13)
    assert np.flatnonzero(flags).tolist() == list(range(495, 508))
    assert np.isfinite(limit).all()


def test_fixed_rule_uses_the_given_threshold():
    score = np.array([0.0, 2.0, 0.5, 3.0, np.nan])
    _, limit, flags = pp.flag_scores(score, rule=None, floor=1.0)
    assert flags.tolist() == [False, True, False, True, False] and (limit == 1.0).all()


def test_dynamic_threshold_separates_a_clear_outlier_run():
    rng = np.random.default_rng(1)
    x = np.abs(rng.normal(0, 1, 2000))
    x[1000:1010] = 15.0
    eps = dynamic_threshold(x)
    assert x[1000:1010].min() > eps > np.sort(x[x < 15])[-1] * 0.5
    assert (x >= eps).sum() == 10


def test_pot_threshold_sits_in_the_tail():
    x = np.random.default_rng(2).exponential(1.0, 20000)
    t = pot_threshold(x, risk=1e-3)
    assert t == pytest.approx(np.log(1000), rel=0.15)  # the 1e-3 tail of Exp(1) is at ln(1000)


def test_events_from_flags_reports_peak_and_severity():
    import pandas as pd

    index = pd.date_range("2024-01-01", periods=6, freq="min")
    score = np.array([0, 1, 4, 2, 0, 0], dtype=float)
    flags = np.array([0, 1, 1, 1, 0, 0], dtype=bool)
    ev = pp.events_from_flags(index, score, np.full(6, 2.0), flags, np.ones((6, 1)), ["s"])
    assert len(ev) == 1 and ev.loc[0, "start"] == index[1] and ev.loc[0, "end"] == index[3]
    assert ev.loc[0, "peak_score"] == 4.0 and ev.loc[0, "severity"] == 2.0 and ev.loc[0, "sensors"] == "s"


def test_normal_cap_is_a_multiple_of_the_largest_normal_score():
    normal = np.array([0.25, np.nan, 1.0, 0.5])
    assert pp.normal_cap(normal, 3.0) == 3.0
    assert pp.normal_cap(normal * 4, 3.0, root=True) == 6.0  # root of the largest squared score: 2, times 3
    assert pp.normal_cap(normal, 0.0) is None  # off
    assert pp.normal_cap(np.array([np.nan]), 3.0) is None  # nothing to refer to


def test_cap_flags_an_anomaly_that_fills_much_of_the_batch():
    # Normal noise around 0.1, then a plateau at 1.0 over 40% of the batch: every window's
    # mean + 4 std sits above the plateau, so the local rule alone flags none of it.
    score = 0.1 + 0.01 * np.random.default_rng(0).standard_normal(5000)
    score[3000:] = 1.0
    _, _, alone = pp.flag_scores(score, rule="ksigma", k=4.0)
    assert not alone[3100:].any()
    cap = pp.normal_cap(score[:2000], 3.0)  # about 0.35: three times the largest normal score
    _, limit, capped = pp.flag_scores(score, rule="ksigma", k=4.0, cap=cap)
    assert capped[3000:].all() and not capped[:3000].any()
    assert limit.max() == pytest.approx(cap)
