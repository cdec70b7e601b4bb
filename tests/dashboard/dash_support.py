"""Helpers and fixtures of the dashboard tests.

Not a conftest.py: the suite's other tests do ``from conftest import ...``, and a second
conftest.py on sys.path would shadow tests/conftest.py. Test modules import the fixtures below.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

ROOT = Path(__file__).resolve().parents[2]
APP = str(ROOT / "anomaly" / "dashboard" / "app.py")
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
        store.commit_run(
            run,
            "series.csv",
            "tiny",
            scores.drop(columns=[c for c in scores if c.startswith("recon_")]),
            detector.events(scores),
            events_since=scores.index[0],
        )
        failed = store.begin_run("series.csv", "tiny@0123456789ab")  # a later version of the model
        store.fail_run(failed, "series.csv: file not found")
    finally:
        store.close()


# Variants of 'tiny' with other flagging rules, same weights: flagging settings do not touch training,
# so these are the models `--local-rule none` / `--local-rule ksigma` would train. Names sort after
# 'tiny', which stays the sidebar's first pick.
VARIANTS = {
    "tiny_fixed": dict(local_rule=None, root_score=False, event_padding=0),  # as saved before the causal rule
    "tiny_fixed_root": dict(local_rule=None),  # --local-rule none today: root score, padding 100
    "tiny_ksigma": dict(local_rule="ksigma"),  # judged against the whole scored batch
}

_DIRS: dict = {}  # built once per test process, shared by every module that imports the fixture


@pytest.fixture(scope="session")
def dash_dirs(tmp_path_factory):
    """Folders models/ (holding model 'tiny' and its VARIANTS), data/ (holding series.csv) and a results DB path."""
    if not _DIRS:
        from anomaly.detector import LSTMAutoencoderDetector

        base = tmp_path_factory.mktemp("dash")
        models, data = base / "models", base / "data"
        models.mkdir()
        data.mkdir()
        frame = make_series()
        (data / "series.csv").write_bytes(csv_bytes(frame))
        # span 20 (not the default 30): the pages' tests count events found at k 6 and k 2 on this series
        LSTMAutoencoderDetector(**TINY, smoothing=20).fit(frame.iloc[:500]).save(models / "tiny")
        for name, params in VARIANTS.items():
            LSTMAutoencoderDetector.load(models / "tiny").set_params(**params).save(models / name)
        _DIRS.update(base=base, models=models, data=data, db=base / "results.db")
    return _DIRS


@pytest.fixture()
def dash_env(dash_dirs, monkeypatch):
    """Environment variables pointing the app at the temp folders (the app reads them on every run)."""
    monkeypatch.setenv("ANOMALY_MODELS_DIR", str(dash_dirs["models"]))
    monkeypatch.setenv("ANOMALY_DATA_DIR", str(dash_dirs["data"]))
    monkeypatch.setenv("ANOMALY_DB", str(dash_dirs["db"]))
    return dash_dirs
