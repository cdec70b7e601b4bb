"""Helpers shared by the reliability tests: generated series, a tiny model, the CLI in a real process.

Imported by the test modules next to it (pytest puts ``tests/`` on ``sys.path``).
"""

from __future__ import annotations

import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
from conftest import cli_env

REPO = Path(__file__).resolve().parents[1]
TINY = dict(window=8, encoder_units=(8,), decoder_units=(8,), latent_dim=4, epochs=2, batch_size=32, verbose=0)


def series(n: int = 400, *, seed: int = 0, start: str = "2024-01-01", freq: str = "1min", tz: str | None = None) -> pd.DataFrame:
    """Two smooth sensors ``a`` and ``b`` with a little noise, timestamps as strings (as in a CSV)."""
    rng = np.random.default_rng(seed)
    x = np.arange(n)
    index = pd.date_range(start, periods=n, freq=freq, tz=tz)
    return pd.DataFrame(
        {
            "timestamp": [t.isoformat(sep=" ") for t in index],
            "a": np.sin(x / 10) + 0.05 * rng.normal(size=n),
            "b": np.cos(x / 7) + 0.05 * rng.normal(size=n),
        }
    )


def write_csv(frame: pd.DataFrame, path: Path, **kwargs) -> Path:
    frame.to_csv(path, index=False, **kwargs)
    return path


def train_tiny(directory: Path, n: int = 400) -> Path:
    """Fit and save the shared tiny model (window 8, one LSTM of 8 units, latent 4, 2 epochs)."""
    from anomaly.detector import LSTMAutoencoderDetector
    from anomaly.io import clean_frame

    frame = clean_frame(series(n))
    LSTMAutoencoderDetector(**TINY).fit(frame).save(directory)
    return directory


def _default_sigint() -> None:
    # A test run started in the background by a non-interactive shell (`cmd &`, nohup) inherits
    # SIGINT ignored, and so would the CLI under test (Python keeps an inherited SIG_IGN): restore
    # the default so that the SIGINT tests see what a user's Ctrl-C does.
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def popen_cli(*args) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "anomaly", *map(str, args)],
        cwd=REPO,
        env=cli_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        preexec_fn=_default_sigint,
    )


def assert_one_line_error(proc: subprocess.CompletedProcess, *fragments: str, code: int = 2) -> str:
    """Exit ``code``, stderr exactly one line ``error: ...`` containing every fragment, no traceback."""
    lines = proc.stderr.strip("\n").split("\n")
    assert proc.returncode == code, f"exit {proc.returncode}, stderr: {proc.stderr!r}"
    assert len(lines) == 1, f"stderr is not one line: {proc.stderr!r}"
    line = lines[0]
    assert line.startswith("error: "), line
    assert "Traceback" not in proc.stderr and "\r" not in line
    for fragment in fragments:
        assert fragment in line, f"{fragment!r} not in {line!r}"
    return line


def entries(directory: Path) -> set[str]:
    """Names in a directory, hidden ones included (to catch leftovers of interrupted writes)."""
    return {p.name for p in directory.iterdir()}
