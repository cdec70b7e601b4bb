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


def run_cli(*args, cwd: Path | None = None, env: dict | None = None, timeout: float = 600):
    """Run the ``anomaly`` command with ARGS as ``python -m anomaly`` does, but in this process.

    A subprocess spends about 9 s importing TensorFlow on CI's machine, and the CLI tests make a few
    hundred calls, a third of the suite's time. In this process the command gets what a fresh one
    would: its own (empty) stdin, stdout and stderr, environment, working directory, warning filters and
    logging, all put back after. What only a real process shows (signals, TensorFlow's own start-up
    output, the entry point) is tested with :func:`run_cli_process`. ``timeout`` is pytest-timeout's.
    """
    import contextlib
    import io
    import logging
    import subprocess
    import traceback
    import warnings

    from anomaly.cli import main

    argv = [str(a) for a in args]
    out, err = io.StringIO(), io.StringIO()
    environ, workdir = dict(os.environ), os.getcwd()
    root, package = logging.getLogger(), logging.getLogger("anomaly")
    kept = (root.handlers[:], package.handlers[:], package.level, package.propagate)
    os.environ.update(TF_CPP_MIN_LOG_LEVEL="3", **(env or {}))
    os.chdir(cwd or ROOT)
    # No handlers on the root logger while the command runs (pytest adds its own), so that a warning
    # routed through logging reaches stderr by logging's last resort, as in a fresh process.
    root.handlers[:] = []
    stdin = sys.stdin
    sys.stdin = io.StringIO()  # nothing to read, as under pytest-xdist
    try:
        with warnings.catch_warnings(), contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            _fresh_warning_filters()
            try:
                code = main(argv)
            except SystemExit as stop:  # argparse's errors, --help and --version
                code = stop.code if isinstance(stop.code, int) else (0 if stop.code is None else 1)
                if isinstance(stop.code, str):
                    print(stop.code, file=sys.stderr)
            except BaseException:  # as the interpreter would: a traceback and exit 1
                traceback.print_exc()
                code = 1
            finally:
                logging.captureWarnings(False)
    finally:
        sys.stdin = stdin
        root.handlers[:], package.handlers[:], package.propagate = kept[0], kept[1], kept[3]
        package.setLevel(kept[2])
        os.chdir(workdir)
        os.environ.clear()
        os.environ.update(environ)
    return subprocess.CompletedProcess(["anomaly", *argv], code, out.getvalue(), err.getvalue())


def _fresh_warning_filters() -> None:
    """The warning filters a fresh interpreter starts with (and an empty once-per-place registry)."""
    import warnings

    warnings.resetwarnings()
    for category in (DeprecationWarning, PendingDeprecationWarning, ImportWarning, ResourceWarning):
        warnings.simplefilter("ignore", category)


def cli_env(**extra: str) -> dict:
    """The environment of a ``python -m anomaly`` subprocess: this one, with this checkout importable."""
    return dict(os.environ, PYTHONPATH=str(ROOT), TF_CPP_MIN_LOG_LEVEL="3", PYTHONUNBUFFERED="1", **extra)


def run_cli_process(*args, cwd: Path | None = None, env: dict | None = None, timeout: float = 600, **kwargs):
    """Run ``python -m anomaly ARGS`` in a real subprocess against this checkout."""
    import subprocess

    return subprocess.run(
        [sys.executable, "-m", "anomaly", *map(str, args)],
        cwd=cwd or ROOT,
        env=cli_env(**(env or {})),
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
