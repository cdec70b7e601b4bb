"""Seasonal profiles: each sensor's usual level at each time of day (or of week), learned from normal data.

Why: the autoencoder reads windows of tens of rows, far shorter than a day, so a day that lacks its
usual jump, or stays flat through its busy hours, looks locally normal to it. Subtracting each
sensor's normal profile at the row's time of day before scaling (the seasonal step of a classic
decomposition) leaves the model the departures from the usual day, and such days score high.

A profile is the median normal value in each slot of the period: slots as wide as the sampling
interval (at most :data:`MAX_SLOTS` a period), centred on the grid so jittered timestamps stay in
their slot, on the clock of the model's time zone (a named zone's daylight-saving shift keeps
office hours in place; data read with UTC offsets are on UTC's clock unless the detector's
``timezone`` names a zone).
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
MIN_PERIODS = 4  # periods with data in at least half their slots: two on each side of the even/odd split
# (a profile and its R^2 use every row, partial periods included; only this count asks for coverage)
MAX_SLOTS = 1440  # slots a period at most (a day of minutes), so a profile stays small in detector.json
ORIGIN = pd.Timestamp("1970-01-05")  # a Monday: weekly slots count from Monday 00:00


@dataclass(frozen=True, eq=False)
class Profile:
    """A sensor's normal level by position in ``period``: ``levels[i]`` at ``offsets[i]`` seconds into it."""

    period: str
    offsets: np.ndarray
    levels: np.ndarray
    r2: float | None  # cross-validated on the normal data; None where it cannot be computed

    def at(self, index: pd.DatetimeIndex, tz: str | None = None) -> np.ndarray:
        """The level at each timestamp (read on ``tz``'s clock): a slot's own level, interpolated
        circularly between slots."""
        return np.interp(phase(index, self.period, tz), self.offsets, self.levels, period=PERIODS[self.period])

    def to_json(self) -> dict:
        """JSON values for ``detector.json`` (checked on load by :mod:`anomaly.artifacts`)."""
        return {"period": self.period, "offsets": self.offsets.tolist(), "levels": self.levels.tolist(), "r2": self.r2}

    @classmethod
    def from_json(cls, state: dict) -> Profile:
        """The profile :meth:`to_json` wrote."""
        return cls(state["period"], np.asarray(state["offsets"], float), np.asarray(state["levels"], float), state["r2"])


def _seconds(index: pd.DatetimeIndex, tz: str | None) -> np.ndarray:
    """Seconds since :data:`ORIGIN` on the clock of ``tz`` (else of the index's own zone, or none)."""
    if index.tz is not None:
        index = (index.tz_convert(tz) if tz is not None else index).tz_localize(None)
    return (index - ORIGIN).total_seconds().to_numpy()


def phase(index: pd.DatetimeIndex, period: str, tz: str | None = None) -> np.ndarray:
    """Seconds into the period of each timestamp, on ``tz``'s clock."""
    phases = np.mod(_seconds(index, tz), PERIODS[period])
    return np.where(phases >= PERIODS[period], 0.0, phases)  # a float mod may round up to the period itself


def slot_width(interval: pd.Timedelta, period: str) -> float:
    """Seconds a slot spans: the sampling interval, or wider where a period would hold more than MAX_SLOTS."""
    return max(interval.total_seconds(), PERIODS[period] / MAX_SLOTS)


def _n_slots(width: float, period: str) -> int:
    return max(1, int(round(PERIODS[period] / width)))


def _slots(phases: np.ndarray, width: float, period: str) -> tuple[np.ndarray, np.ndarray]:
    """Each row's slot (centred on multiples of ``width``, the last one wrapping to slot 0) and its phase
    made continuous within the slot (just before the period's end counts as just before 0)."""
    slot = np.floor(phases / width + 0.5).astype(np.int64)
    wraps = slot >= _n_slots(width, period)
    return np.where(wraps, 0, slot), np.where(wraps, phases - PERIODS[period], phases)


def _profile(phases: np.ndarray, values: np.ndarray, width: float, period: str) -> tuple[np.ndarray, np.ndarray]:
    """Median phase and median value per slot, ascending by phase: exact slot positions on a regular grid."""
    slot, continuous = _slots(phases, width, period)
    grouped = pd.DataFrame({"phase": continuous, "value": values}).groupby(slot, sort=True).median()
    offsets = np.mod(grouped["phase"].to_numpy(), PERIODS[period])
    order = np.argsort(offsets, kind="stable")
    return offsets[order], grouped["value"].to_numpy()[order]


def _cv_r2(phases: np.ndarray, numbers: np.ndarray, values: np.ndarray, width: float, period: str) -> float | None:
    """Mean R^2 of the profile of the even periods on the odd ones and back; None on a constant sensor."""
    scores = []
    for side in (0, 1):
        fit = numbers % 2 == side
        offsets, levels = _profile(phases[fit], values[fit], width, period)
        held = values[~fit]
        total = np.sum((held - held.mean()) ** 2)
        if total == 0:
            return None
        guess = np.interp(phases[~fit], offsets, levels, period=PERIODS[period])
        scores.append(1.0 - np.sum((held - guess) ** 2) / total)
    return float(np.mean(scores))


def _covered_periods(numbers: np.ndarray, slots: np.ndarray, width: float, period: str) -> int:
    """How many periods have data in at least half their slots."""
    per_period = pd.Series(slots).groupby(numbers).nunique().to_numpy()
    return int(np.sum(per_period * 2 >= _n_slots(width, period)))


def fit_profiles(X: pd.DataFrame, mode: str, interval: pd.Timedelta, tz: str | None = None) -> dict[str, Profile]:
    """Profiles of the columns of ``X`` (normal data, read on ``tz``'s clock) that get one under ``mode``;
    see the module docstring.

    ``mode`` ``day`` or ``week`` gives every column that period's profile, and raises
    :class:`DataError` if the data have fewer than :data:`MIN_PERIODS` of them at least half covered.
    """
    if mode == "off":
        return {}
    profiles: dict[str, Profile] = {}
    for period in tuple(PERIODS) if mode == "auto" else (mode,):
        if interval.total_seconds() * 2 > PERIODS[period]:  # fewer than two rows a period: no shape to learn
            if mode != "auto":
                raise DataError(f"seasonal={mode}: rows are {interval} apart, too far for a {period} profile")
            continue
        width = slot_width(interval, period)
        all_phases = phase(X.index, period, tz)
        all_numbers = np.floor(_seconds(X.index, tz) / PERIODS[period]).astype(np.int64)
        for column in X.columns:
            values = X[column].to_numpy(dtype=float)
            finite = np.isfinite(values)
            phases, numbers, values = all_phases[finite], all_numbers[finite], values[finite]
            n_periods = _covered_periods(numbers, _slots(phases, width, period)[0], width, period)
            if n_periods < MIN_PERIODS:
                if mode != "auto":
                    raise DataError(
                        f"seasonal={mode}: the normal data of column '{column}' cover {n_periods} {period}(s) at least half; "
                        f"a {period} profile needs {MIN_PERIODS} (use --seasonal auto or off)"
                    )
                continue
            r2 = _cv_r2(phases, numbers, values, width, period)
            best = profiles.get(str(column))
            if mode == "auto" and (r2 is None or r2 < GATE or (best is not None and r2 <= best.r2)):
                continue
            profiles[str(column)] = Profile(period, *_profile(phases, values, width, period), r2)
    return {str(c): profiles[str(c)] for c in X.columns if str(c) in profiles}


def offsets_of(index: pd.DatetimeIndex, columns: list[str], profiles: dict[str, Profile], tz: str | None = None) -> np.ndarray:
    """The profile level of each column at each timestamp (0 where a column has no profile)."""
    out = np.zeros((len(index), len(columns)))
    for j, column in enumerate(columns):
        if column in profiles:
            out[:, j] = profiles[column].at(index, tz)
    return out


def remove(X: pd.DataFrame, profiles: dict[str, Profile], tz: str | None = None) -> pd.DataFrame:
    """``X`` less each profiled column's level at its timestamps (``X`` itself when there is none)."""
    if not any(c in profiles for c in X.columns):
        return X
    return X - offsets_of(X.index, list(X.columns), profiles, tz)


def describe(profiles: dict[str, Profile]) -> str:
    """One line naming the profiled sensors, for logs."""
    return ", ".join(f"'{c}' ({p.period}{'' if p.r2 is None else f', R^2 {p.r2:.2f}'})" for c, p in profiles.items())
