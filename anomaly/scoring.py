"""The score frame: the columns ``score()`` returns, the database stores and every page reads.

One row per timestamp: ``score``, ``threshold``, ``is_anomaly``, then one ``error_<sensor>`` column
per scored sensor (its squared error) and, on request, ``recon_<sensor>`` (its reconstruction in
the sensor's units). The names are made and read here only, so the detector, incremental scoring,
the store, the baselines and the dashboard agree on them.
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np
import pandas as pd

BASE_COLUMNS = ("score", "threshold", "is_anomaly")
ERROR = "error_"
RECON = "recon_"


def error_column(sensor: str) -> str:
    return f"{ERROR}{sensor}"


def recon_column(sensor: str) -> str:
    return f"{RECON}{sensor}"


def error_columns(sensors: Iterable[str]) -> list[str]:
    return [error_column(s) for s in sensors]


def frame_columns(sensors: Iterable[str]) -> list[str]:
    """Every column of a score frame without reconstructions, in order."""
    return [*BASE_COLUMNS, *error_columns(sensors)]


def sensors_of(frame: pd.DataFrame) -> list[str]:
    """The sensors a score frame has errors for, in column order."""
    return [c[len(ERROR) :] for c in frame.columns if c.startswith(ERROR)]


def errors_of(frame: pd.DataFrame, sensors: Iterable[str]) -> np.ndarray:
    """The ``(rows, sensors)`` squared errors of ``sensors`` in a score frame, as float64."""
    return frame[error_columns(sensors)].to_numpy(dtype=np.float64)


def add_sensor_columns(
    out: pd.DataFrame, sensors: list[str], errors: np.ndarray, recon: np.ndarray | None = None
) -> pd.DataFrame:
    """``out`` with an error column per sensor (``errors[:, i]``) and, given ``recon``, a reconstruction column."""
    for i, name in enumerate(sensors):
        out[error_column(name)] = errors[:, i]
    if recon is not None:
        for i, name in enumerate(sensors):
            out[recon_column(name)] = recon[:, i]
    return out


def empty_frame(sensors: Iterable[str], index: pd.Index) -> pd.DataFrame:
    """A score frame with no row (typed as a full one would be)."""
    return pd.DataFrame(columns=frame_columns(sensors), index=index[:0]).astype({"is_anomaly": bool, "score": float})
