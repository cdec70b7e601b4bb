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


def coverage(n_rows: int, starts: np.ndarray, window: int) -> np.ndarray:
    """How many blocks of ``window`` rows (beginning at ``starts``) cover each row."""
    delta = np.zeros(n_rows + 1, dtype=np.int64)
    np.add.at(delta, starts, 1)
    np.add.at(delta, starts + window, -1)
    return np.cumsum(delta)[:n_rows]


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
        self.count = np.zeros(n_rows, dtype=np.int32)  # windows covering a row: far below 2**31

    def add(self, starts: np.ndarray, values: np.ndarray, lengths: np.ndarray | None = None) -> None:
        """Add ``values`` of shape ``(len(starts), steps, n_features)`` for blocks of rows at ``starts``.

        ``steps`` is the window for reconstructions and the horizon for predictions (pass
        :func:`future_starts` as ``starts``). With ``lengths``, block ``i`` adds only its first
        ``lengths[i]`` steps (the rest is padding).
        """
        # One vectorised add per offset: within a batch, starts are distinct, so starts + k are too.
        for k in range(values.shape[1]):
            keep = slice(None) if lengths is None else lengths > k
            self.total[starts[keep] + k] += values[keep, k, :]
            self.count[starts[keep] + k] += 1

    def mean(self, consume: bool = False) -> np.ndarray:
        """Per-row means (NaN where no window covers the row).

        ``consume=True`` divides the running totals in place and returns them (no second array of
        the series' length: scoring a long series keeps its peak memory lower); add nothing after.
        """
        with np.errstate(invalid="ignore", divide="ignore"):
            out = np.divide(self.total, self.count[:, None], out=self.total if consume else None)
        out[self.count == 0] = np.nan
        return out


class OverlapMedian:
    """Per-timestamp median of per-window values (e.g. reconstructions) over overlapping windows.

    Same interface as :class:`OverlapMean`. Every estimate is kept (an array of rows x estimates x
    features that grows as rows collect more estimates), so memory grows with the number of
    windows covering a row: ``window / stride`` for reconstructions. The median resists the odd
    window that reconstructs a row badly because of a burst elsewhere in it (Orion's
    ``reconstruction_errors`` aggregates overlapping reconstructions the same way).
    """

    def __init__(self, n_rows: int, n_features: int):
        self.values = np.full((n_rows, 1, n_features), np.nan, dtype=np.float64)
        self.count = np.zeros(n_rows, dtype=np.int64)

    def add(self, starts: np.ndarray, values: np.ndarray, lengths: np.ndarray | None = None) -> None:
        """Keep ``values`` of shape ``(len(starts), steps, n_features)`` for the rows they cover (see OverlapMean.add)."""
        for k in range(values.shape[1]):
            keep = slice(None) if lengths is None else lengths > k
            rows = starts[keep] + k
            slots = self.count[rows]  # rows are distinct within one offset, so one slot each
            if len(slots) and slots.max() >= self.values.shape[1]:
                grow = max(self.values.shape[1], int(slots.max()) + 1 - self.values.shape[1])
                pad = np.full((self.values.shape[0], grow, self.values.shape[2]), np.nan)
                self.values = np.concatenate([self.values, pad], axis=1)
            self.values[rows, slots] = values[keep, k, :]
            self.count[rows] += 1

    def median(self) -> np.ndarray:
        """Median over each row's estimates; NaN for rows no window covered."""
        out = np.full((self.values.shape[0], self.values.shape[2]), np.nan)
        seen = self.count > 0
        out[seen] = np.nanmedian(self.values[seen], axis=1)
        return out


# -- prediction: windows followed by the steps they predict -----------------------------------
def span_starts(finite_rows: np.ndarray, window: int, horizon: int = 0, stride: int = 1) -> np.ndarray:
    """Starts of every ``window`` followed by ``horizon`` more rows, all without a break.

    A prediction model reads rows ``s .. s+window-1`` and predicts ``s+window .. s+window+horizon-1``,
    so it needs ``window + horizon`` complete rows; ``horizon=0`` gives :func:`window_starts`.
    """
    return window_starts(finite_rows, window + horizon, stride)


def future_starts(starts: np.ndarray, window: int) -> np.ndarray:
    """First predicted row of each window at ``starts``: the row right after the window.

    The way back from predictions to timestamps: ``OverlapMean.add(future_starts(s, w), errors)``
    gives each row the mean error of the (up to ``horizon``) windows that predicted it.
    """
    return np.asarray(starts, dtype=np.int64) + window


# -- decoder targets --------------------------------------------------------------------------
def reverse_steps(x: np.ndarray, lengths: np.ndarray | None = None) -> np.ndarray:
    """Each sample's steps in reverse order (the reversed reconstruction target of Srivastava et al.).

    With ``lengths``, only the first ``lengths[i]`` steps of sample ``i`` are reversed and padding
    stays at the end. The operation is its own inverse.
    """
    if lengths is None:
        return np.ascontiguousarray(x[:, ::-1])
    out = x.copy()
    for i, n in enumerate(np.asarray(lengths)):
        out[i, :n] = x[i, n - 1 :: -1] if n else x[i, :0]
    return out


def shift_right(targets: np.ndarray) -> np.ndarray:
    """Teacher-forcing input of a conditional decoder: the target delayed one step, zeros first.

    At step ``t`` the decoder is fed the true value of step ``t-1`` (its previous output at inference).
    """
    out = np.zeros_like(targets)
    out[:, 1:] = targets[:, :-1]
    return out


# -- collections of separate sequences --------------------------------------------------------
def pad_sequences(sequences: list[np.ndarray], length: int, value: float) -> tuple[np.ndarray, np.ndarray]:
    """Stack 2-D ``(steps, n_features)`` arrays into ``(n, length, n_features)``, padded at the end.

    Returns the batch and each sequence's length. Written here rather than with
    ``keras.utils.pad_sequences`` because this module must not import Keras.
    """
    if not sequences:
        raise ValueError("no sequence to pad")
    n_features = sequences[0].shape[1]
    lengths = np.array([len(s) for s in sequences], dtype=np.int64)
    if lengths.max() > length:
        raise ValueError(f"a sequence has {lengths.max()} steps, more than {length}")
    out = np.full((len(sequences), length, n_features), value, dtype=np.float32)
    for i, s in enumerate(sequences):
        out[i, : len(s)] = s
    return out, lengths


def step_mask(lengths: np.ndarray, length: int) -> np.ndarray:
    """``(n, length)`` float mask: 1 on real steps, 0 on padding (per-step loss weights)."""
    return (np.arange(length)[None, :] < np.asarray(lengths)[:, None]).astype(np.float32)
