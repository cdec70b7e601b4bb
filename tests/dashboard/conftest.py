"""A tiny model trained once per session on a generated series, and the app pointed at temp folders."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

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


@pytest.fixture(scope="session")
def dash_dirs(tmp_path_factory):
    """Folders models/ (holding model 'tiny'), data/ (holding series.csv) and a results DB path."""
    from anomaly.detector import LSTMAutoencoderDetector

    base = tmp_path_factory.mktemp("dash")
    models, data = base / "models", base / "data"
    models.mkdir()
    data.mkdir()
    frame = make_series()
    out = frame.reset_index()
    out["timestamp"] = out["timestamp"].dt.strftime("%Y-%m-%d %H:%M:%S")
    out.to_csv(data / "series.csv", index=False)
    detector = LSTMAutoencoderDetector(**TINY).fit(frame.iloc[:500])
    detector.save(models / "tiny")
    return {"base": base, "models": models, "data": data, "db": base / "results.db"}


@pytest.fixture()
def dash_env(dash_dirs, monkeypatch):
    """Environment variables pointing the app at the temp folders (the app reads them on every run)."""
    monkeypatch.setenv("ANOMALY_MODELS_DIR", str(dash_dirs["models"]))
    monkeypatch.setenv("ANOMALY_DATA_DIR", str(dash_dirs["data"]))
    monkeypatch.setenv("ANOMALY_DB", str(dash_dirs["db"]))
    return dash_dirs
