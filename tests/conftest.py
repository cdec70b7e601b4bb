"""Shared fixtures: small generated series with known anomalies, and one tiny fitted detector."""

from __future__ import annotations

import functools
import os
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

ROOT = Path(__file__).resolve().parents[1]
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

TINY = dict(window=8, encoder_units=(8,), decoder_units=(8,), latent_dim=4, epochs=2, batch_size=32, verbose=0)
# The plain score (mean squared error over sensors, unsmoothed) against one fixed threshold: for tests
# of the score's arithmetic and of the fixed-threshold path, not of the default causal flagging.
FIXED = dict(local_rule=None, root_score=False, smoothing=0, event_padding=0, local_cap=0.0)


def make_series(n: int = 400, n_sensors: int = 2, seed: int = 0, start: str = "2024-01-01", freq: str = "1min") -> pd.DataFrame:
    """Sine waves with a little noise, one column per sensor, indexed by timestamp."""
    rng = np.random.default_rng(seed)
    t = np.arange(n, dtype=float)
    data = {f"s{i}": np.sin(2 * np.pi * t / (20 + 7 * i)) + rng.normal(0, 0.05, n) for i in range(n_sensors)}
    return pd.DataFrame(data, index=pd.date_range(start, periods=n, freq=freq, name="timestamp"))


def write_csv(frame: pd.DataFrame, path: Path) -> Path:
    frame.reset_index().to_csv(path, index=False)
    return path


def run_cli(*args: str, cwd: Path | None = None, timeout: int = 600, **kwargs):
    """Run ``python -m anomaly ARGS`` in a subprocess against this checkout."""
    import subprocess

    env = dict(os.environ, PYTHONPATH=str(ROOT), TF_CPP_MIN_LOG_LEVEL="3")
    env.update(kwargs.pop("env", {}))
    return subprocess.run(
        [sys.executable, "-m", "anomaly", *map(str, args)],
        cwd=cwd or ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        **kwargs,
    )


def pg_url() -> str:
    """The test PostgreSQL server's URL; in CI a missing server fails the test instead of skipping it."""
    url = os.environ.get("ANOMALY_TEST_PG_URL")
    if not url:
        if os.environ.get("CI"):
            pytest.fail("ANOMALY_TEST_PG_URL is not set: .ci/run must start PostgreSQL before the tests")
        pytest.skip("no PostgreSQL: run the PostgreSQL block of .ci/run as root and export ANOMALY_TEST_PG_URL")
    return worker_database(url)


@functools.cache
def worker_database(url: str) -> str:
    """``url`` for the first pytest-xdist worker (or a serial run); another worker gets a database of
    its own (``<name>_gw1``, created on first use), so parallel workers never drop each other's
    tables nor wait on each other's advisory locks, which PostgreSQL keys per database."""
    worker = os.environ.get("PYTEST_XDIST_WORKER", "gw0")
    if worker == "gw0":
        return url
    import sqlalchemy as sa

    from anomaly.store import make_url

    own = sa.engine.make_url(url)
    own = own.set(database=f"{own.database}_{worker}")
    engine = sa.create_engine(make_url(url), isolation_level="AUTOCOMMIT")
    try:
        with engine.connect() as conn:
            if not conn.execute(sa.text("SELECT 1 FROM pg_database WHERE datname = :n"), {"n": own.database}).scalar():
                conn.execute(sa.text(f'CREATE DATABASE "{own.database}"'))
    finally:
        engine.dispose()
    return own.render_as_string(hide_password=False)


@pytest.fixture(params=["sqlite", "postgresql"])
def target(request, tmp_path) -> str:
    """A results database for each backend: an SQLite file path, or the test server's URL on a clean schema."""
    if request.param == "sqlite":
        return str(tmp_path / "results.db")
    import sqlalchemy as sa

    from anomaly.store import make_url, metadata

    url = pg_url()
    engine = sa.create_engine(make_url(url))
    with engine.begin() as conn:
        metadata.drop_all(conn)
    engine.dispose()
    return url


@pytest.fixture(scope="session")
def series() -> pd.DataFrame:
    return make_series()


@pytest.fixture(scope="session")
def tiny_detector(series):
    from anomaly.detector import LSTMAutoencoderDetector

    return LSTMAutoencoderDetector(**TINY).fit(series)
