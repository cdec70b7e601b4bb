"""Sliding windows over a series with breaks, and the way back from windows to timestamps.

Pure numpy. Windows are never materialised all at once: callers get window *start* indices and
gather one batch at a time from a strided view, so memory grows with batch x window x sensors,
not with the length of the series.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np


def segments(finite_rows: np.ndarray) -> list[tuple[int, int]]:
    """Half-open ``(start, stop)`` runs of consecutive True values: the stretches between breaks."""
    finite_rows = np.asarray(finite_rows, dtype=bool)
    edges = np.diff(np.concatenate([[0], finite_rows.astype(np.int8), [0]]))
    starts = np.flatnonzero(edges == 1)
    stops = np.flatnonzero(edges == -1)
    return list(zip(starts.tolist(), stops.tolist()))


def window_starts(finite_rows: np.ndarray, window: int, stride: int = 1) -> np.ndarray:
    """Start indices of every window of ``window`` rows that spans no break.

    Starts step by ``stride`` inside each segment, and the last possible start of a segment is
    always included, so with ``stride <= window`` every row of a segment at least ``window`` long
    is covered by some window.
    """
    if window < 1 or stride < 1:
        raise ValueError("window and stride must be at least 1")
    parts = []
    for lo, hi in segments(finite_rows):
        last = hi - window
        if last < lo:
            continue
        starts = np.arange(lo, last + 1, stride)
        if starts[-1] != last:
            starts = np.append(starts, last)
        parts.append(starts)
    return np.concatenate(parts).astype(np.int64) if parts else np.empty(0, dtype=np.int64)


def gather(values: np.ndarray, starts: np.ndarray, window: int) -> np.ndarray:
    """The windows beginning at ``starts`` as a ``(len(starts), window, n_features)`` array."""
    view = np.lib.stride_tricks.sliding_window_view(values, window, axis=0)  # (n, f, window), no copy
    return np.ascontiguousarray(view[starts].transpose(0, 2, 1))


def batched(starts: np.ndarray, batch_size: int) -> Iterator[np.ndarray]:
    """Consecutive slices of ``starts`` of at most ``batch_size``."""
    for i in range(0, len(starts), batch_size):
        yield starts[i : i + batch_size]


class OverlapMean:
    """Running per-timestamp mean of per-window values (e.g. squared errors) over overlapping windows.

    Windows arrive in batches; each adds its ``(window, n_features)`` values to the rows it covers.
    Rows covered by no window end as NaN.
    """

    def __init__(self, n_rows: int, n_features: int):
        self.total = np.zeros((n_rows, n_features), dtype=np.float64)
        self.count = np.zeros(n_rows, dtype=np.int64)

    def add(self, starts: np.ndarray, values: np.ndarray) -> None:
        """Add ``values`` of shape ``(len(starts), window, n_features)`` for windows at ``starts``."""
        # One vectorised add per offset: within a batch, starts are distinct, so starts + k are too.
        for k in range(values.shape[1]):
            self.total[starts + k] += values[:, k, :]
            self.count[starts + k] += 1

    def mean(self) -> np.ndarray:
        with np.errstate(invalid="ignore", divide="ignore"):
            out = self.total / self.count[:, None]
        out[self.count == 0] = np.nan
        return out
