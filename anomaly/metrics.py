"""Detection metrics: overlap-segment (event-level) and point-wise precision, recall and F1.

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


def prf(tp: int, fp: int, fn: int) -> dict:
    """Precision, recall and F1 from counts (0 where undefined), with the counts."""
    precision = tp / (tp + fp) if tp + fp else 0.0
    recall = tp / (tp + fn) if tp + fn else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return {"tp": int(tp), "fp": int(fp), "fn": int(fn), "precision": precision, "recall": recall, "f1": f1}


def _overlaps(a: Interval, b: Interval) -> bool:
    return a[0] <= b[1] and b[0] <= a[1]


def overlap_segment(events: Sequence[Interval], labels: Sequence[Interval]) -> dict:
    """Event-level counts and scores (Orion's ``contextual`` overlap-segment convention)."""
    tp = sum(any(_overlaps(lab, ev) for ev in events) for lab in labels)
    fp = sum(not any(_overlaps(ev, lab) for lab in labels) for ev in events)
    return prf(tp, fp, len(labels) - tp)


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
