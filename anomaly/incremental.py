"""Incremental scoring: which rows a new run must (re)write, and their scores from the windows they need.

Models with causal flagging (``local_rule="trailing"``, the default) go through :func:`score_causal`:
each run flags the rows after the stored checkpoint from the state saved there, so the database
holds exactly the flags of a one-shot score. The rest of this doc is the fixed-threshold path.

A detector's score for a timestamp is the mean error of every window covering it, optionally
EWMA-smoothed (over the span in force, ``smoothing_``) over all earlier rows. So when new rows arrive:

- the rows without a stored score are *dirty*; every row within ``window - 1`` of a dirty row is
  covered by new windows and changes too, so it is re-scored and upserted (with ``stride > 1``
  the window grid of a whole segment can move, so the rest of the segment is re-scored);
- with smoothing, a dirty row also changes the smoothed score of the rows after it; the change
  decays as ``(1 - alpha)^k`` and is below double precision after :func:`ewm_horizon` rows, so
  that many following rows are re-scored, and that many covered rows *before* the first written
  row are scored as context to warm the EWMA up.

:func:`score_rows` then runs the model only on the windows covering the written rows and their
context, and returns what ``detector.score(X)`` would return for those rows (equal up to the
order of floating-point sums: tests check it with a tight ``np.allclose``). It uses the
detector's private seams ``prepare``, ``forward`` and ``combine`` on purpose: they are the
same code the full score runs, which is what makes the results equal.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from anomaly import scoring
from anomaly.windows import coverage, segments, window_starts

EWM_TOLERANCE = 1e-16  # history weight below which the smoothed score cannot change a double


def ewm_horizon(span: int) -> int:
    """Covered rows after which earlier rows weigh less than :data:`EWM_TOLERANCE` in an EWMA of ``span``."""
    if span <= 1:
        return 0
    alpha = 2.0 / (span + 1.0)
    return int(math.ceil(math.log(EWM_TOLERANCE) / math.log(1.0 - alpha)))


def _dilate(mask: np.ndarray, left: int, right: int) -> np.ndarray:
    """True within ``left`` rows before and ``right`` rows after any True row."""
    n = len(mask)
    delta = np.zeros(n + 1, dtype=np.int64)
    idx = np.flatnonzero(mask)
    np.add.at(delta, np.maximum(idx - left, 0), 1)
    np.add.at(delta, np.minimum(idx + right + 1, n), -1)
    return np.cumsum(delta)[:n] > 0


def rows_to_write(finite_rows: np.ndarray, stored: np.ndarray, window: int, stride: int = 1, smoothing: int = 0) -> np.ndarray:
    """Rows whose score a run must write: covered rows not ``stored`` and the covered rows they change."""
    finite_rows = np.asarray(finite_rows, dtype=bool)
    covered = coverage(len(finite_rows), window_starts(finite_rows, window, stride), window) > 0
    dirty = covered & ~np.asarray(stored, dtype=bool)
    if not dirty.any():
        return dirty
    horizon = ewm_horizon(smoothing)
    out = _dilate(dirty, window - 1 if stride == 1 else window, window - 1)
    if stride > 1:
        for lo, hi in segments(finite_rows):
            hit = np.flatnonzero(dirty[lo:hi])
            if len(hit):
                out[max(lo, lo + hit[0] - window) : hi] = True
    if horizon:
        # a dirty row moves the smoothed score of the next `horizon` *covered* rows, gaps skipped
        rank = np.cumsum(covered)
        last_rank = np.maximum.accumulate(np.where(dirty, rank, 0))
        out |= (last_rank > 0) & (rank - last_rank <= horizon + window)
    return out & covered


def _batch_steps(detector) -> str:
    """What in a non-causal model's flagging looks beyond the rows a run writes, in words."""
    steps = [f"local_rule '{detector.local_rule}' judges each row against the batch"] if detector.local_rule else []
    if detector.event_padding > 0:
        steps.append(f"events padded by {detector.event_padding} rows on both sides")
    if detector.prune > 0:
        steps.append("pruning")
    if detector.root_score:
        steps.append("the root score, smoothed and thresholded with them")
    return "; ".join(steps)


def score_rows(
    detector, X: pd.DataFrame, rows: np.ndarray, *, threshold: float | None = None, quantile: float | None = None
) -> pd.DataFrame:
    """``detector.score(X)`` restricted to ``rows`` (a boolean mask over the rows of ``X``), computing only
    the windows needed."""
    kind = getattr(detector, "model_kind", "reconstruction")
    if kind != "reconstruction":  # the row arithmetic below assumes each window estimates its own rows
        from anomaly.errors import ConfigError

        raise ConfigError(
            f"incremental scoring with a fixed threshold supports reconstruction models only, not model_kind '{kind}'; "
            "use the model's own causal rule (no --threshold or --quantile), or score the whole series with "
            "'anomaly score --out'"
        )
    if detector.has_postprocessing() and threshold is None and quantile is None:
        # anomaly.postprocess works on the whole scored batch (local thresholds and pruning judge a row
        # against the rest of it): a few new rows scored alone would not match a full score.
        from anomaly.errors import ConfigError

        raise ConfigError(
            f"this model's flagging ({_batch_steps(detector)}) needs the whole scored batch, which "
            "incremental scoring cannot reproduce; score the whole series with 'anomaly score --out', give "
            "a fixed --threshold, or train with the default causal rule (local_rule 'trailing'), or with "
            "--local-rule none --event-padding 0 --prune 0 --no-root-score for a plain fixed threshold"
        )
    given = X.index
    X, values, starts = detector.prepare(X)
    if len(X) != len(given):  # missing timestamps put back on the grid: the mask still names the rows given
        rows = pd.Series(np.asarray(rows, dtype=bool), index=given).reindex(X.index, fill_value=False).to_numpy()
    window = detector.window
    limit = detector.threshold_for(threshold, quantile)
    covered = coverage(len(X), starts, window) > 0
    idx = np.flatnonzero(np.asarray(rows, dtype=bool) & covered)
    if len(idx) == 0:
        return scoring.empty_frame(detector.target_columns_, X.index)
    first, last = int(idx[0]), int(idx[-1])
    context = first
    horizon = ewm_horizon(detector.smoothing_) if detector.smoothing_ > 1 else 0
    if horizon:
        # start the EWMA `horizon` covered rows before the first written row (or at row 0)
        before = np.flatnonzero(covered[:first])
        context = int(before[-horizon]) if len(before) >= horizon else 0
    need = starts[(starts + window - 1 >= context) & (starts <= last)]
    lo, hi = int(need[0]), int(need[-1]) + window
    row_errors, _ = detector.forward(values[lo:hi], need - lo)
    row_errors[: max(context - lo, 0)] = np.nan  # rows before the context lack some of their windows
    score = detector.combine(row_errors)
    pick = idx - lo
    out = pd.DataFrame({"score": score[pick], "threshold": limit}, index=X.index[idx])
    out["is_anomaly"] = np.nan_to_num(out["score"].to_numpy(), nan=-np.inf) > limit
    return scoring.add_sensor_columns(out, detector.target_columns_, row_errors[pick])


def score_causal(
    detector, X: pd.DataFrame, saved: tuple[pd.Timestamp, dict] | None
) -> tuple[pd.DataFrame, tuple[pd.Timestamp, dict] | None]:
    """The rows of ``X`` after the checkpoint ``saved`` (``(at, state)``; None: from the first row,
    seeded like a one-shot score), scored and flagged from its state, and the new checkpoint.

    A row's score is final once every window whose estimates reach it is in ``X``: all but the last
    ``span - 1`` rows (``span`` with a stride above 1), where a window's span is its rows plus, for the
    kinds that predict, the horizon after it (and for aer before it). The checkpoint moves to the last
    final row; the rows after it are written too (as a one-shot score of ``X`` would give them) and
    flagged again by the next run. Every model kind; rows nothing estimates (a prediction's first
    ``window`` rows of a stretch) are not returned, as they are not stored.
    """
    from anomaly import flagging

    X, values, starts = detector.prepare(X)
    n = len(X)
    before, after = detector.reach()  # the window at s estimates rows s - before .. s + after - 1
    rule = detector.flag_rule()
    if saved is None:
        first, state = 0, detector.flag_seed(rule)
    else:
        first, state = int(X.index.searchsorted(saved[0], side="right")), flagging.FlagState.from_dict(saved[1])
    estimated = detector.estimated_rows(np.isfinite(values).all(axis=1))
    need = starts[starts + after - 1 >= first]
    if len(need) == 0:
        return scoring.empty_frame(detector.target_columns_, X.index), saved
    lo, hi = int(need[0]) - before, int(need[-1]) + after
    first = max(first, lo)  # rows in a gap before the first window have no score
    row_errors, _ = detector.forward(values[lo:hi], need - lo)
    row_errors = row_errors[first - lo :]  # rows first .. hi-1 (the rows before first lack some windows)
    raw = detector.sensor_mean(row_errors)
    # rows before `last` have all their windows (with stride > 1 the segment's last window moves as rows arrive)
    last = n - (before + after) + (1 if detector.stride_ == 1 else 0)
    final = max(0, min(last, hi) - first)  # rows first .. first+final-1
    head = flagging.flag(raw[:final], rule, state)
    tail = flagging.flag(raw[final:], rule, head.state.copy())
    out = pd.DataFrame(
        {
            "score": np.r_[head.score, tail.score],
            "threshold": np.r_[head.threshold, tail.threshold],
            "is_anomaly": np.r_[head.flags, tail.flags],
        },
        index=X.index[first:hi],
    )
    scoring.add_sensor_columns(out, detector.target_columns_, row_errors)
    checkpoint = (X.index[first + final - 1], head.state.to_dict()) if final else saved
    return out[estimated[first:hi]], checkpoint


def event_cutoff(
    first_written, stored_events: pd.DataFrame, interval: pd.Timedelta, min_length: int, merge_gap: int
) -> pd.Timestamp:
    """Earliest timestamp from which events must be recomputed when rows from ``first_written`` change.

    A run of flagged rows can merge with rows at most ``merge_gap`` rows before it, and a run that was
    too short to be an event (under ``min_length`` rows) may now grow into one; a stored event near
    ``first_written`` is recomputed from its start.
    """
    first_written = pd.Timestamp(first_written)
    cutoff = first_written - (int(min_length) + int(merge_gap) + 2) * interval
    if len(stored_events):
        touching = stored_events[stored_events["end"] >= cutoff]
        if len(touching):
            cutoff = min(cutoff, pd.Timestamp(touching["start"].min()))
    return cutoff


def event_frame(stored: pd.DataFrame, new: pd.DataFrame, interval: pd.Timedelta, limit: float | None) -> pd.DataFrame:
    """Stored scores overlaid with new ones on the regular time grid (missing rows NaN), for event finding.

    ``stored`` has a ``timestamp`` column (as :meth:`Store.scores` returns), ``new`` a timestamp index.
    ``limit``: the fixed threshold for every row; None keeps each row's own threshold and flag
    (causal flagging), missing rows unflagged.
    """
    keep = [
        c
        for c in new.columns
        if c == "score" or c.startswith(scoring.ERROR) or (limit is None and c in ("threshold", "is_anomaly"))
    ]
    old = stored.set_index("timestamp")[[c for c in keep if c in stored.columns]]
    old = old[~old.index.isin(new.index)]
    frame = pd.concat([old, new[keep]]).sort_index()
    if len(frame):
        grid = pd.date_range(frame.index[0], frame.index[-1], freq=interval)
        if frame.index.isin(grid).all():
            frame = frame.reindex(grid)
    if limit is None:
        frame["is_anomaly"] = frame["is_anomaly"].astype("boolean").fillna(False).astype(bool)
    else:
        frame["threshold"] = float(limit)
    return frame
