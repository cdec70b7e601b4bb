"""The core install (``pip install lstm-anomaly``, no extras) scores a default-saved model without TensorFlow.

A fresh virtual environment gets this checkout's package and nothing else: the test proves the
dependency split in pyproject.toml, not only that the scoring code avoids TensorFlow imports
(tests/test_engine.py does that inside the full environment). It installs from PyPI, as a user's
box would; about 20 s with a warm cache.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from conftest import ROOT, TINY, make_series, write_csv

SHIPPED = ("pyproject.toml", "README.md", "LICENSE", "anomaly")  # what a source distribution holds
EXTRAS_ONLY = ("tensorflow", "keras", "tf2onnx", "streamlit", "plotly")


@pytest.fixture(scope="module")
def slim(tmp_path_factory) -> Path:
    """The ``bin`` folder of a new venv holding the core install of this checkout."""
    base = tmp_path_factory.mktemp("slim")
    source = base / "src"  # a copy: building in the checkout would leave build/ and egg-info there
    source.mkdir()
    for name in SHIPPED:
        copy = shutil.copytree if (ROOT / name).is_dir() else shutil.copy2
        copy(ROOT / name, source / name, **({"ignore": shutil.ignore_patterns("__pycache__")} if name == "anomaly" else {}))
    subprocess.run([sys.executable, "-m", "venv", base / "venv"], check=True, timeout=120)
    bin_dir = base / "venv" / "bin"
    pip = subprocess.run(
        [bin_dir / "python", "-m", "pip", "install", "--quiet", "--disable-pip-version-check", source],
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert pip.returncode == 0, pip.stderr[-3000:]
    return bin_dir


def run_slim(bin_dir: Path, *args, cwd: Path):
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    env["PATH"] = f"{bin_dir}{os.pathsep}{env.get('PATH', '')}"
    return subprocess.run([bin_dir / "anomaly", *map(str, args)], cwd=cwd, env=env, capture_output=True, text=True, timeout=300)


def with_spike() -> pd.DataFrame:
    frame = make_series(400, 2, seed=3)
    frame.iloc[300:306, 0] += 4.0
    return frame


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    """Two models from the full environment: saved with the defaults (ONNX export), and without it."""
    from anomaly.detector import LSTMAutoencoderDetector

    base = tmp_path_factory.mktemp("models")
    detector = LSTMAutoencoderDetector(**TINY).fit(make_series(400, 2))
    return detector, detector.save(base / "default"), detector.save(base / "keras-only", onnx=False)


def test_core_install_has_no_tensorflow_and_scores_a_default_model(slim, saved, tmp_path):
    detector, default, _ = saved
    found = subprocess.run(
        [
            slim / "python",
            "-c",
            f"import importlib.util as u, sys; print(','.join(m for m in {EXTRAS_ONLY!r} if u.find_spec(m)))",
        ],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        timeout=60,
    )
    assert found.returncode == 0 and found.stdout.strip() == "", found.stdout + found.stderr
    data = write_csv(with_spike(), tmp_path / "d.csv")
    run = run_slim(
        slim, "score", data, "--model", default, "--out", tmp_path / "s.csv", "--events", tmp_path / "e.csv", cwd=tmp_path
    )
    assert run.returncode == 0, run.stderr
    scored = pd.read_csv(tmp_path / "s.csv")
    expected = detector.score(with_spike())  # TensorFlow, in this process
    np.testing.assert_allclose(scored["score"], expected["score"], rtol=1e-5, atol=1e-7)
    assert (scored["is_anomaly"].to_numpy() == expected["is_anomaly"].to_numpy()).all()
    assert scored["is_anomaly"].iloc[300:306].any()
    assert len(pd.read_csv(tmp_path / "e.csv")) == len(detector.events(expected))
    for _ in range(2):  # the scheduled path, twice: the second run has nothing new and writes nothing
        db = run_slim(slim, "score", data, "--model", default, "--db", tmp_path / "r.db", cwd=tmp_path)
        assert db.returncode == 0, db.stderr
    from anomaly.store import open_store

    with open_store(tmp_path / "r.db") as store:
        assert store.runs()["status"].tolist() == ["success", "success"]
        assert store.events()["start"].min() <= with_spike().index[305]


def test_core_install_says_which_extra_a_command_needs(slim, saved, tmp_path):
    _, _, keras_only = saved
    data = write_csv(make_series(300, 2), tmp_path / "d.csv")
    cases = [
        (("train", data, "--model", tmp_path / "m"), "pip install 'lstm-anomaly[train]'"),
        (("score", data, "--model", keras_only), "pip install 'lstm-anomaly[train]'"),
        (("dashboard",), "pip install 'lstm-anomaly[dashboard]'"),
    ]
    for args, hint in cases:
        run = run_slim(slim, *args, cwd=tmp_path)
        lines = run.stderr.strip().splitlines()
        assert run.returncode == 1, (args, run.stderr)
        assert len(lines) == 1 and lines[0].startswith("error: ") and hint in lines[0], (args, run.stderr)
    assert not (tmp_path / "m").exists()
