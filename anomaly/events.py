"""Flagged timestamps -> anomaly events with a peak score, a severity and the sensors behind them.

Pure numpy/pandas. An event is a run of flagged rows; runs separated by at most ``merge_gap``
unflagged rows are merged, and events shorter than ``min_length`` rows are dropped.
Severity is the peak score divided by the threshold: 2.0 means twice the threshold.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

EVENT_COLUMNS = ["start", "end", "peak_score", "severity", "sensors"]
MAX_TOP_SENSORS = 3
TOP_SENSOR_SHARE = 0.5  # a sensor is listed when its contribution is at least half the top one's


def flagged_runs(flags: np.ndarray, merge_gap: int = 0, min_length: int = 1) -> list[tuple[int, int]]:
    """Inclusive ``(first, last)`` row positions of runs of True, merged across short gaps."""
    flags = np.asarray(flags, dtype=bool)
    edges = np.diff(np.concatenate([[0], flags.astype(np.int8), [0]]))
    starts = np.flatnonzero(edges == 1)
    ends = np.flatnonzero(edges == -1) - 1
    runs: list[list[int]] = []
    for s, e in zip(starts.tolist(), ends.tolist()):
        if runs and s - runs[-1][1] - 1 <= merge_gap:
            runs[-1][1] = e
        else:
            runs.append([s, e])
    return [(s, e) for s, e in runs if e - s + 1 >= min_length]


def top_sensors(contributions: np.ndarray, names: list[str]) -> list[str]:
    """Sensors ranked by mean contribution over an event, those near the top one only."""
    mean = np.nanmean(contributions, axis=0) if len(contributions) else np.zeros(len(names))
    mean = np.nan_to_num(mean, nan=0.0)
    order = np.argsort(-mean, kind="stable")
    best = mean[order[0]]
    return [names[i] for i in order[:MAX_TOP_SENSORS] if best <= 0 or mean[i] >= TOP_SENSOR_SHARE * best][:MAX_TOP_SENSORS]


def find_events(
    index: pd.DatetimeIndex,
    score: np.ndarray,
    threshold: float,
    contributions: np.ndarray,
    sensors: list[str],
    *,
    min_length: int = 1,
    merge_gap: int = 0,
) -> pd.DataFrame:
    """Events where ``score > threshold``; ``contributions`` is ``(rows, sensors)``, larger = more to blame."""
    score = np.asarray(score, dtype=np.float64)
    flags = np.nan_to_num(score, nan=-np.inf) > threshold
    rows = []
    for s, e in flagged_runs(flags, merge_gap, min_length):
        peak = float(np.nanmax(score[s : e + 1]))
        rows.append(
            {
                "start": index[s],
                "end": index[e],
                "peak_score": peak,
                "severity": peak / threshold if threshold > 0 else np.inf,
                "sensors": ";".join(top_sensors(contributions[s : e + 1][flags[s : e + 1]], sensors)),
            }
        )
    return events_frame(rows, index)


def events_frame(rows: list[dict], index: pd.DatetimeIndex) -> pd.DataFrame:
    """Events as a frame of :data:`EVENT_COLUMNS`, typed also when there are none (times as ``index``'s):
    an empty events file in Parquet then has the columns' types, not nulls another file's cannot join."""
    if rows:
        return pd.DataFrame(rows, columns=EVENT_COLUMNS)
    types = {"start": index.dtype, "end": index.dtype, "peak_score": "float64", "severity": "float64", "sensors": "string"}
    return pd.DataFrame({c: pd.Series(dtype=types[c]) for c in EVENT_COLUMNS})
