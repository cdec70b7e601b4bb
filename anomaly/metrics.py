"""Detection metrics: overlap-segment (event-level), weighted-segment (time) and point-wise precision, recall and F1.

Overlap-segment, as in Orion's benchmark: a labelled window counts as found (TP) when at least one
detected event overlaps it, and is missed (FN) otherwise; a detected event that overlaps no
labelled window is a false alarm (FP). Windows and events are inclusive ``[start, end]``.
Pure numpy/pandas, no Keras.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

Interval = tuple[pd.Timestamp, pd.Timestamp]


def prf(tp: float, fp: float, fn: float) -> dict:
    """Precision, recall and F1 from counts (0 where undefined), with the counts (ints, or seconds as floats)."""
    precision = tp / (tp + fp) if tp + fp else 0.0
    recall = tp / (tp + fn) if tp + fn else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    number = float if any(isinstance(v, (float, np.floating)) for v in (tp, fp, fn)) else int
    return {"tp": number(tp), "fp": number(fp), "fn": number(fn), "precision": precision, "recall": recall, "f1": f1}


def _overlaps(a: Interval, b: Interval) -> bool:
    return a[0] <= b[1] and b[0] <= a[1]


def overlap_segment(events: Sequence[Interval], labels: Sequence[Interval]) -> dict:
    """Event-level counts and scores (Orion's ``contextual`` overlap-segment convention)."""
    tp = sum(any(_overlaps(lab, ev) for ev in events) for lab in labels)
    fp = sum(not any(_overlaps(ev, lab) for lab in labels) for ev in events)
    return prf(tp, fp, len(labels) - tp)


def weighted_segment(events: Sequence[Interval], labels: Sequence[Interval], start: pd.Timestamp, end: pd.Timestamp) -> dict:
    """Orion's weighted-segment counts, in seconds: the time from ``start`` to ``end`` is cut at every
    edge of the events and labelled windows, each piece is a window's (or an event's) when one
    overlaps it, and counts by its duration. As Orion does with its integer timestamps, one second is
    added to every end (ends are inclusive), and an overlap must be longer than an instant.
    Written here because Orion is not a dependency; it is point-wise F1 weighted by time.
    """

    def seconds(t: pd.Timestamp) -> float:
        return pd.Timestamp(t).value / 1e9  # UTC nanoseconds, so zones compare correctly

    windows = [(seconds(a), seconds(b) + 1) for a, b in labels]
    found = [(seconds(a), seconds(b) + 1) for a, b in events]
    edges = sorted({seconds(start), seconds(end), *(e for iv in windows + found for e in iv)})
    counts = {"tp": 0.0, "fp": 0.0, "fn": 0.0}
    for lo, hi in zip(edges[:-1], edges[1:]):
        labelled = any(a < hi and b > lo for a, b in windows)
        flagged = any(a < hi and b > lo for a, b in found)
        if labelled or flagged:
            counts["tp" if labelled and flagged else ("fn" if labelled else "fp")] += hi - lo
    return prf(counts["tp"], counts["fp"], counts["fn"])


def label_mask(index: pd.DatetimeIndex, labels: Sequence[Interval]) -> np.ndarray:
    """True for every timestamp of ``index`` inside a labelled window."""
    mask = np.zeros(len(index), dtype=bool)
    for start, end in labels:
        mask |= (index >= start) & (index <= end)
    return mask


def pointwise(index: pd.DatetimeIndex, flags: np.ndarray, labels: Sequence[Interval]) -> dict:
    """Point-wise counts and scores: every timestamp is one sample."""
    truth = label_mask(index, labels)
    flags = np.asarray(flags, dtype=bool)
    return prf(int((flags & truth).sum()), int((flags & ~truth).sum()), int((~flags & truth).sum()))


def auc_pr(index: pd.DatetimeIndex, score: np.ndarray, labels: Sequence[Interval]) -> float | None:
    """Area under the precision-recall curve of a continuous score against the labelled timestamps
    (scikit-learn's average precision; rows without a score are left out). None when there is no
    labelled or no unlabelled scored row: the threshold-free figure Orion reports beside F1."""
    from sklearn.metrics import average_precision_score

    score = np.asarray(score, dtype=np.float64)
    scored = np.isfinite(score)
    truth = label_mask(index, labels)[scored]
    if truth.all() or not truth.any():
        return None
    return float(average_precision_score(truth, score[scored]))


def point_adjusted(index: pd.DatetimeIndex, flags: np.ndarray, labels: Sequence[Interval]) -> dict:
    """Point-adjusted scores (optimistic): a labelled window hit anywhere counts as wholly detected."""
    flags = np.asarray(flags, dtype=bool).copy()
    for start, end in labels:
        inside = (index >= start) & (index <= end)
        if (flags & inside).any():
            flags |= inside
    return pointwise(index, flags, labels)


def parse_labels(raw, tz=None) -> list[Interval]:
    """``[[start, end], ...]`` (strings or timestamps) as timestamps in the series' time zone."""

    def ts(value) -> pd.Timestamp:
        t = pd.Timestamp(value)
        if tz is not None and t.tzinfo is None:
            return t.tz_localize(tz)
        if tz is None and t.tzinfo is not None:
            return t.tz_convert("UTC").tz_localize(None)
        return t

    out = []
    for item in raw:
        if not isinstance(item, (list, tuple)) or len(item) != 2:
            raise ValueError(f"a label window must be [start, end], not {item!r}")
        start, end = ts(item[0]), ts(item[1])
        if end < start:
            raise ValueError(f"label window ends before it starts: {item!r}")
        out.append((start, end))
    return out
