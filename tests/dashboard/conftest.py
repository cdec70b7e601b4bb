"""A tiny model trained once per session on a generated series, and the app pointed at temp folders."""

from __future__ import annotations

import pytest
from dash_support import TINY, csv_bytes, make_series


@pytest.fixture(scope="session")
def dash_dirs(tmp_path_factory):
    """Folders models/ (holding model 'tiny'), data/ (holding series.csv) and a results DB path."""
    from anomaly.detector import LSTMAutoencoderDetector

    base = tmp_path_factory.mktemp("dash")
    models, data = base / "models", base / "data"
    models.mkdir()
    data.mkdir()
    frame = make_series()
    (data / "series.csv").write_bytes(csv_bytes(frame))
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
