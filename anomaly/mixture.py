"""AER's prediction-reconstruction mixture of errors (Wong et al. 2022), with normal-data statistics.

A detector with a reconstruction decoder and prediction decoders (``composite``, ``aer``) has two
errors for most rows: the reconstruction error (the windows that contain the row) and the regression
error (the predictions of the row from the windows just before and after it). AER scales each to
[0, 1] by its minimum and maximum and joins them: ``mult`` (1 + rec)(1 + reg), ``sum`` their mean.
Orion scales by the scored series itself, so a row's score depends on rows after it; here the
ranges come from the held-out normal rows of the fit and are saved with the model, so scoring stays
causal and one call equals any chunking (issue 13's rule).
"""

from __future__ import annotations

import warnings

import numpy as np

PARTS = ("reconstruction", "regression")
JOINS = ("mult", "sum")


def part_of(output: str) -> str:
    """The part a decoder's errors count for: its reconstruction, or a regression (either direction)."""
    return "reconstruction" if output == "reconstruction" else "regression"


def part_ranges(parts: dict[str, np.ndarray]) -> dict[str, list[list[float]]]:
    """Each part's per-sensor ``[low, high]`` over the rows where every part is defined (held-out
    normal rows at fit time): the min-max scaling of :func:`join`, as JSON lists."""
    both = np.all([np.isfinite(parts[p]).all(axis=1) for p in PARTS], axis=0)
    if not both.any():
        raise ValueError("no row has both a reconstruction and a regression error to learn their ranges from")
    return {p: [np.min(parts[p][both], axis=0).tolist(), np.max(parts[p][both], axis=0).tolist()] for p in PARTS}


def scaled(errors: np.ndarray, low_high: list[list[float]]) -> np.ndarray:
    """``errors`` (rows x sensors) as fractions of their normal range: 0 at its low end, 1 at its high
    end, never below 0 (a row better than any normal one is as good as the best); above 1 is unseen."""
    low, high = (np.asarray(v, dtype=float) for v in low_high)
    return np.maximum((errors - low) / np.maximum(high - low, 1e-12), 0.0)


def join(parts: dict[str, np.ndarray], ranges: dict[str, list[list[float]]], how: str) -> np.ndarray:
    """One error per row and sensor from the two parts, each scaled by :func:`scaled`.

    ``mult``: (1 + rec)(1 + reg) - 1 (0 on the best normal rows, 3 on the worst); ``sum``: the mean
    of the two. A row that only one part covers (a series' first and last ``horizon`` rows, which
    only a prediction reaches) takes that part alone; NaN where neither does.
    """
    if how not in JOINS:
        raise ValueError(f"unknown join {how!r}: expected one of {', '.join(JOINS)}")
    rec, reg = (scaled(parts[p], ranges[p]) for p in PARTS)
    if how == "mult":
        joined = (1 + np.nan_to_num(rec)) * (1 + np.nan_to_num(reg)) - 1
        joined[np.isnan(rec) & np.isnan(reg)] = np.nan
        return joined
    with warnings.catch_warnings():  # rows neither part covers are NaN by design
        warnings.simplefilter("ignore", RuntimeWarning)
        return np.nanmean(np.stack([rec, reg]), axis=0)
