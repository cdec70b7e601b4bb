"""Seasonal profiles: each sensor's usual level at each time of day (or of week), learned from normal data.

Why: the autoencoder reads windows of tens of rows, far shorter than a day, so a day that lacks its
usual jump, or stays flat through its busy hours, looks locally normal to it. Subtracting each
sensor's normal profile at the row's time of day before scaling (the seasonal step of a classic
decomposition) leaves the model the departures from the usual day, and such days score high.

A profile is the median normal value in each slot of the period (slots as wide as the sampling
interval, on the wall clock, so a timezone's daylight-saving shift keeps office hours in place).
With ``mode="auto"`` a sensor gets one only where it predicts held-out periods well: a profile
from the even-numbered days must explain at least :data:`GATE` of the variance of the odd ones and
back (cross-validated R^2), so series without a clock-bound pattern are left as they are. A
profile is a fixed function of the timestamp, so scoring stays causal and chunk-invariant.

Written here rather than taken from statsmodels' STL: STL decomposes one finished series, while a
detector needs a profile learned once and applied to rows it has not seen yet.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from anomaly.errors import DataError

PERIODS = {"day": 86400.0, "week": 7 * 86400.0}
MODES = ("auto", "off", *PERIODS)
GATE = 0.5  # auto: least cross-validated R^2 of a profile (chosen a priori, see docs/benchmarks.md)
MIN_PERIODS = 4  # periods the normal data must touch: at least two on each side of the even/odd split
ORIGIN = pd.Timestamp("1970-01-05")  # a Monday: weekly slots count from Monday 00:00


@dataclass(frozen=True)
class Profile:
    """A sensor's normal level by position in ``period``: ``levels[i]`` at ``offsets[i]`` seconds into it."""

    period: str
    offsets: np.ndarray
    levels: np.ndarray
    r2: float | None  # cross-validated on the normal data; None where it cannot be computed

    def at(self, index: pd.DatetimeIndex) -> np.ndarray:
        """The level at each timestamp: a slot's own level, interpolated (circularly) between slots."""
        return np.interp(phase(index, self.period), self.offsets, self.levels, period=PERIODS[self.period])

    def to_json(self) -> dict:
        return {
            "period": self.period,
            "offsets": self.offsets.tolist(),
            "levels": self.levels.tolist(),
            "r2": self.r2,
        }

    @classmethod
    def from_json(cls, state: dict) -> Profile:
        return cls(state["period"], np.asarray(state["offsets"], float), np.asarray(state["levels"], float), state["r2"])


def phase(index: pd.DatetimeIndex, period: str) -> np.ndarray:
    """Seconds into the period of each timestamp, on the wall clock."""
    wall = index.tz_localize(None) if index.tz is not None else index
    seconds = (wall - ORIGIN).total_seconds().to_numpy()
    phases = np.mod(seconds, PERIODS[period])
    return np.where(phases >= PERIODS[period], 0.0, phases)  # a float mod may round up to the period itself


def _period_number(index: pd.DatetimeIndex, period: str) -> np.ndarray:
    wall = index.tz_localize(None) if index.tz is not None else index
    return np.floor((wall - ORIGIN).total_seconds().to_numpy() / PERIODS[period]).astype(np.int64)


def _profile(phases: np.ndarray, values: np.ndarray, step: float) -> tuple[np.ndarray, np.ndarray]:
    """Median phase and median value per slot of width ``step``: exact slot positions on a regular grid."""
    slot = np.floor(phases / step).astype(np.int64)
    grouped = pd.DataFrame({"phase": phases, "value": values}).groupby(slot, sort=True).median()
    return grouped["phase"].to_numpy(), grouped["value"].to_numpy()


def _cv_r2(phases: np.ndarray, numbers: np.ndarray, values: np.ndarray, step: float, period: str) -> float | None:
    """Mean R^2 of the profile of the even periods on the odd ones and back; None on a constant sensor."""
    scores = []
    for side in (0, 1):
        fit = numbers % 2 == side
        offsets, levels = _profile(phases[fit], values[fit], step)
        held = values[~fit]
        total = np.sum((held - held.mean()) ** 2)
        if total == 0:
            return None
        guess = np.interp(phases[~fit], offsets, levels, period=PERIODS[period])
        scores.append(1.0 - np.sum((held - guess) ** 2) / total)
    return float(np.mean(scores))


def fit_profiles(X: pd.DataFrame, mode: str, interval: pd.Timedelta) -> dict[str, Profile]:
    """Profiles of the columns of ``X`` (normal data) that get one under ``mode``; see the module docstring.

    ``mode`` ``day`` or ``week`` gives every column that period's profile, and raises
    :class:`DataError` if the normal data touch fewer than :data:`MIN_PERIODS` of them.
    """
    if mode == "off":
        return {}
    periods = tuple(PERIODS) if mode == "auto" else (mode,)
    step = max(interval.total_seconds(), 1e-9)
    profiles: dict[str, Profile] = {}
    for column in X.columns:
        series = X[column]
        finite = series[np.isfinite(series.to_numpy(dtype=float))]
        best: Profile | None = None
        for period in periods:
            numbers = _period_number(finite.index, period)
            touched = len(np.unique(numbers))
            if step * 2 > PERIODS[period]:  # fewer than two rows a period: no shape to learn
                if mode != "auto":
                    raise DataError(f"seasonal={mode}: rows are {interval} apart, too far for a {period} profile")
                continue
            if touched < MIN_PERIODS:
                if mode != "auto":
                    raise DataError(
                        f"seasonal={mode}: the normal period touches {touched} {period}(s) of column '{column}'; "
                        f"a {period} profile needs at least {MIN_PERIODS} (use --seasonal auto or off)"
                    )
                continue
            phases, values = phase(finite.index, period), finite.to_numpy(dtype=float)
            r2 = _cv_r2(phases, numbers, values, step, period)
            if mode == "auto" and (r2 is None or r2 < GATE or (best is not None and r2 <= best.r2)):
                continue
            best = Profile(period, *_profile(phases, values, step), r2)
        if best is not None:
            profiles[str(column)] = best
    return profiles


def levels(index: pd.DatetimeIndex, columns: list[str], profiles: dict[str, Profile]) -> np.ndarray:
    """The profile level of each column at each timestamp (0 where a column has no profile)."""
    out = np.zeros((len(index), len(columns)))
    for j, column in enumerate(columns):
        if column in profiles:
            out[:, j] = profiles[column].at(index)
    return out


def remove(X: pd.DataFrame, profiles: dict[str, Profile]) -> pd.DataFrame:
    """``X`` less each profiled column's level at its timestamps (``X`` itself when there is none)."""
    profiled = [c for c in X.columns if c in profiles]
    if not profiled:
        return X
    out = X.copy()
    for column in profiled:
        out[column] = out[column].to_numpy(dtype=float) - profiles[column].at(X.index)
    return out


def describe(profiles: dict[str, Profile]) -> str:
    """One line naming the profiled sensors, for logs."""
    return ", ".join(f"'{c}' ({p.period}{'' if p.r2 is None else f', R^2 {p.r2:.2f}'})" for c, p in profiles.items())
