"""Helpers of the dashboard tests (a module of its own: tests/conftest.py is also named conftest)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[2]
APP = str(ROOT / "dashboard" / "app.py")
ANOMALY_ROWS = (600, 630)  # rows where sensor "a" is pushed off its pattern
TINY = dict(window=8, encoder_units=(8,), decoder_units=(8,), latent_dim=4, epochs=2, batch_size=32, seed=0, verbose=0)


def make_series(n: int = 800, seed: int = 1) -> pd.DataFrame:
    """Two periodic sensors every 5 minutes with one known anomaly in ``a`` (and a smaller echo in ``b``)."""
    rng = np.random.default_rng(seed)
    t = np.arange(n)
    a = np.sin(2 * np.pi * t / 48) + 0.05 * rng.standard_normal(n)
    b = np.cos(2 * np.pi * t / 48) + 0.05 * rng.standard_normal(n)
    lo, hi = ANOMALY_ROWS
    a[lo:hi] += 3.0
    b[lo:hi] += 0.5
    index = pd.date_range("2024-01-01", periods=n, freq="5min", name="timestamp")
    return pd.DataFrame({"a": a, "b": b}, index=index)


def csv_bytes(frame: pd.DataFrame) -> bytes:
    """A frame as the bytes of a CSV file with a ``timestamp`` column."""
    out = frame.reset_index()
    out["timestamp"] = out["timestamp"].dt.strftime("%Y-%m-%d %H:%M:%S")
    return out.to_csv(index=False).encode()


def fill_store(db, detector, scores) -> None:
    """Two runs through anomaly.store's own API: one that wrote scores and events, one that failed."""
    from anomaly.store import open_store

    store = open_store(str(db), create=True)
    try:
        run = store.begin_run("series.csv", "tiny")
        store.commit_run(run, "series.csv", "tiny", scores.drop(columns=[c for c in scores if c.startswith("recon_")]),
                         detector.events(scores), events_since=scores.index[0])
        failed = store.begin_run("series.csv", "tiny")
        store.fail_run(failed, "series.csv: file not found")
    finally:
        store.close()
