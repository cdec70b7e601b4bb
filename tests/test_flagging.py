"""Causal flagging (anomaly.flagging): the vectorised rule equals a row-by-row reference, resumes
exactly from saved state, and never changes a row's flag when rows are appended."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from anomaly import flagging as fg


def reference(raw: np.ndarray, rule: fg.TrailingRule, state: fg.FlagState):
    """The rule as written in the module doc, one row at a time: the specification."""
    score, _, _ = fg.transform(raw, rule, state.ewm_num, state.ewm_den)
    trail, pad_left = list(state.trail), state.pad_left
    limits, flags = np.full(len(raw), np.nan), np.zeros(len(raw), dtype=bool)
    for t, s in enumerate(score):
        if not np.isfinite(s):
            continue
        past = np.array(trail)
        limit = np.inf
        if len(past) >= 2:
            limit = past.mean() + rule.k * past.std()
            if rule.prune > 0:
                limit = max(limit, (1 + rule.prune) * past.max())
        if rule.cap is not None:
            limit = min(limit, rule.cap)
        limits[t] = limit
        if s > limit:
            flags[t], pad_left = True, rule.pad
        elif pad_left > 0:
            flags[t], pad_left = True, pad_left - 1
        if not flags[t] or not rule.exclude:
            trail = (trail + [s])[-rule.trailing :]
    return score, limits, flags


def random_case(rng: np.random.Generator, trial: int):
    n = int(rng.integers(1, 2500))
    raw = rng.gamma(2.0, 1.0, n)
    for _ in range(int(rng.integers(0, 5))):  # anomalies: short bursts and long plateaus
        at = int(rng.integers(0, n))
        raw[at : at + int(rng.integers(1, 400))] *= rng.uniform(2, 30)
    raw[rng.random(n) < 0.02] = np.nan  # gaps
    rule = fg.TrailingRule(
        k=float(rng.uniform(1, 5)),
        trailing=int(rng.integers(2, 400)),
        cap=[None, 20.0][trial % 2],
        prune=[0.0, 0.13][(trial // 2) % 2],
        pad=int(rng.integers(0, 60)),
        smoothing=int(rng.integers(0, 30)),
        root=bool(trial % 3),
        exclude=trial % 5 != 4,
    )
    start = fg.seed(rng.gamma(2.0, 1.0, int(rng.integers(0, 500))), rule)
    return raw, rule, start


@pytest.mark.parametrize("trial", range(60))
def test_vectorised_rule_equals_the_row_by_row_reference_and_resumes_from_any_chunking(trial):
    rng = np.random.default_rng(trial)
    raw, rule, start = random_case(rng, trial)
    score, limits, flags = reference(raw, rule, start)
    whole = fg.flag(raw, rule, start.copy())
    assert np.array_equal(whole.flags, flags)
    np.testing.assert_allclose(whole.threshold, limits, rtol=1e-9, equal_nan=True)
    np.testing.assert_allclose(whole.score, score, rtol=1e-12, equal_nan=True)
    # ten chunks, each resumed from the previous one's state (through JSON, as the database keeps it)
    state, parts = start, []
    for idx in np.array_split(np.arange(len(raw)), np.sort(rng.integers(0, len(raw), 9))):
        out = fg.flag(raw[idx], rule, state)
        state = fg.FlagState.from_dict(json.loads(json.dumps(out.state.to_dict())))
        parts.append(out)
    assert np.array_equal(np.concatenate([p.flags for p in parts]), flags)
    np.testing.assert_allclose(np.concatenate([p.threshold for p in parts]), limits, rtol=1e-9, equal_nan=True)
    np.testing.assert_allclose(np.concatenate([p.score for p in parts]), score, rtol=1e-12, equal_nan=True)


def test_appending_rows_never_changes_earlier_flags():
    rng = np.random.default_rng(7)
    raw = rng.gamma(2.0, 1.0, 3000)
    raw[1000:1800] *= 12.0  # a long anomaly: a batch-relative threshold would rise over it
    rule = fg.TrailingRule(k=4.0, trailing=500, pad=20, smoothing=10, root=True)
    start = fg.seed(rng.gamma(2.0, 1.0, 600), rule)
    full = fg.flag(raw, rule, start).flags
    for n in (1, 999, 1001, 1500, 2999):
        assert np.array_equal(fg.flag(raw[:n], rule, start).flags, full[:n])
    # the whole plateau is flagged: flagged rows never enter the trail, so the bar stays normal
    assert full[1003:1800].all() and not full[:1000].any()  # (the EWMA takes a few rows to rise)


def test_a_long_plateau_stays_flagged_and_padding_only_runs_forward():
    score = np.r_[np.ones(50), np.full(30, 10.0), np.ones(50)]
    score[::2] += 0.1  # some spread in the trail
    rule = fg.TrailingRule(k=3.0, trailing=40, pad=5)
    out = fg.flag(score, rule, fg.FlagState())
    assert out.flags[50:85].all()  # the plateau and 5 rows after it
    assert not out.flags[:50].any() and not out.flags[85:].any()
    assert np.all(out.threshold[50:85] == out.threshold[50])  # frozen inside the run


def test_cap_flags_rows_far_above_normal_whatever_the_trail():
    normal = np.tile([0.5, 1.5], 50)  # mean 1, std 0.5: mean + 100 std = 51
    rule = fg.make_rule(normal, k=100.0, trailing=50, cap_factor=3.0, prune=0.0, pad=0, smoothing=0, root=False)
    assert rule.cap == 4.5
    out = fg.flag(np.r_[normal[:10], 4.6, 4.4], rule, fg.seed(normal, rule))
    assert out.flags.tolist() == [False] * 10 + [True, False] and out.threshold[-1] == 4.5


def test_first_row_without_history_is_judged_by_the_cap_alone():
    rule = fg.TrailingRule(cap=2.0)
    out = fg.flag(np.array([1.0, 2.5, 1.0]), rule, fg.FlagState())
    assert out.flags.tolist() == [False, True, False] and out.threshold[0] == 2.0


def test_gaps_are_never_flagged_and_do_not_count_down_padding():
    raw = np.array([1.0, 1.1, 0.9, 1.0, 50.0, np.nan, np.nan, 1.0, 1.0, 1.0])
    out = fg.flag(raw, fg.TrailingRule(k=3.0, pad=2), fg.FlagState())
    assert out.flags.tolist() == [False, False, False, False, True, False, False, True, True, False]
    assert np.isnan(out.threshold[5]) and np.isnan(out.score[6])


def test_ewma_matches_pandas_and_resumes_exactly():
    rng = np.random.default_rng(3)
    raw = rng.gamma(2.0, 1.0, 500)
    raw[rng.random(500) < 0.05] = np.nan
    rule = fg.TrailingRule(smoothing=20)
    smooth, num, den = fg.transform(raw, rule)
    expected = pd.Series(raw).ewm(span=20, ignore_na=True).mean().to_numpy(copy=True)
    expected[np.isnan(raw)] = np.nan
    np.testing.assert_allclose(smooth, expected, rtol=1e-12, equal_nan=True)
    a, n1, d1 = fg.transform(raw[:200], rule)
    b, _, _ = fg.transform(raw[200:], rule, n1, d1)
    assert np.array_equal(np.r_[a, b], smooth, equal_nan=True)


def test_seed_starts_from_the_latest_normal_scores():
    rule = fg.TrailingRule(trailing=3, root=True)
    state = fg.seed(np.array([1.0, 4.0, 9.0, 16.0, np.nan, 25.0]), rule)
    assert state.trail.tolist() == [3.0, 4.0, 5.0] and state.pad_left == 0
    assert fg.normal_cap(np.array([1.0, 4.0]), 0, rule) is None
    assert fg.normal_cap(np.array([1.0, 4.0]), 2.0, rule) == 4.0


def test_long_series_are_flagged_block_by_block_exactly(monkeypatch):
    rng = np.random.default_rng(11)
    raw, rule, start = random_case(rng, 3)
    score, limits, flags = reference(raw, rule, start)
    monkeypatch.setattr(fg, "BLOCK", 37)  # many blocks, each resumed from the previous one's state
    out = fg.flag(raw, rule, start)
    assert np.array_equal(out.flags, flags)
    np.testing.assert_allclose(out.threshold, limits, rtol=1e-9, equal_nan=True)
    np.testing.assert_allclose(out.score, score, rtol=1e-12, equal_nan=True)
