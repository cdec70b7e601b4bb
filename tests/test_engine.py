"""The ONNX engine: same scores as TensorFlow, no TensorFlow import, safe and clear failures."""

from __future__ import annotations

import json
import shutil
import sys

import numpy as np
import pandas as pd
import pytest

from anomaly.detector import LSTMAutoencoderDetector
from anomaly.errors import ConfigError, DataError, ModelError
from anomaly.sequences import LSTMSequenceDetector
from tests.conftest import ROOT, TINY, make_series, run_cli, write_csv

# A spike the detector must flag under both engines.
SPIKE = 300


def _with_spike(n: int = 400) -> pd.DataFrame:
    frame = make_series(n, 2, seed=3)
    frame.iloc[SPIKE : SPIKE + 3, 0] += 4.0
    return frame


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    """Directories of a reconstruction, a composite (two outputs) and a bidirectional model, each with model.onnx."""
    train = make_series(400, 2, seed=1)
    root = tmp_path_factory.mktemp("onnx")
    dirs = {}
    for name, params in (
        ("reconstruction", {"smoothing": 5}),
        ("composite", {"model_kind": "composite", "horizon": 3}),
        ("bidirectional", {"bidirectional": True}),
    ):
        det = LSTMAutoencoderDetector(**TINY, **params).fit(train)
        dirs[name] = det.save(root / name, onnx=True)
    return dirs


@pytest.mark.parametrize("kind", ["reconstruction", "composite", "bidirectional"])
def test_onnx_scores_equal_tensorflow_scores(exported, kind):
    data = _with_spike()
    tf_scores = LSTMAutoencoderDetector.load(exported[kind]).score(data)
    onnx_det = LSTMAutoencoderDetector.load(exported[kind], engine="onnx")
    onnx_scores = onnx_det.score(data)
    assert type(onnx_det.model_).__name__ == "OnnxModel"
    np.testing.assert_allclose(onnx_scores["score"], tf_scores["score"], rtol=1e-5, atol=1e-7)
    errors = [c for c in tf_scores.columns if c.startswith("error_")]
    np.testing.assert_allclose(onnx_scores[errors], tf_scores[errors], rtol=1e-5, atol=1e-7)
    assert (onnx_scores["is_anomaly"] == tf_scores["is_anomaly"]).all()
    assert onnx_scores["is_anomaly"].iloc[SPIKE : SPIKE + 3].any()


def test_onnx_model_batches_and_empty_input(exported):
    from anomaly.engine import OnnxModel

    model = OnnxModel(exported["composite"] / "model.onnx", batch_size=4)
    x = np.random.default_rng(0).standard_normal((10, TINY["window"], 2)).astype(np.float32)
    whole = OnnxModel(exported["composite"] / "model.onnx", batch_size=1024)(x)
    parts = model(x)  # three calls of 4, 4 and 2 windows
    assert [p.shape for p in parts] == [(10, TINY["window"], 2), (10, 3, 2)]
    for a, b in zip(parts, whole):
        np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-7)
    empty = model(x[:0])
    assert [e.shape for e in empty] == [(0, TINY["window"], 2), (0, 3, 2)]


def test_auto_engine_takes_onnx_only_where_exported(exported, tiny_detector, tmp_path):
    assert type(LSTMAutoencoderDetector.load(exported["reconstruction"], engine="auto").model_).__name__ == "OnnxModel"
    plain = tiny_detector.save(tmp_path / "plain", onnx=False)
    assert not (plain / "model.onnx").exists()
    assert type(LSTMAutoencoderDetector.load(plain, engine="auto").model_).__name__ != "OnnxModel"
    with pytest.raises(
        ModelError, match=r"no ONNX export \(trained with --no-onnx, or by an older version\); add one with 'anomaly export-onnx"
    ):
        LSTMAutoencoderDetector.load(plain, engine="onnx")
    with pytest.raises(ModelError, match="engine must be one of auto, tensorflow, onnx"):
        LSTMAutoencoderDetector.load(plain, engine="torch")


def test_onnx_detector_scores_only(exported, tmp_path):
    det = LSTMAutoencoderDetector.load(exported["reconstruction"], engine="onnx")
    with pytest.raises(ConfigError, match="saving needs the Keras model"):
        det.save(tmp_path / "again")
    with pytest.raises(ConfigError, match="embedding needs the Keras model"):
        det.embed(make_series(100, 2))
    assert not (tmp_path / "again").exists()


def test_tampered_onnx_file_is_refused(exported, tmp_path):
    copy = shutil.copytree(exported["reconstruction"], tmp_path / "m")
    onnx = copy / "model.onnx"
    onnx.write_bytes(onnx.read_bytes()[:-10] + b"0123456789")
    with pytest.raises(ModelError, match=r"model.onnx: checksum does not match detector.json"):
        LSTMAutoencoderDetector.load(copy, engine="onnx")
    # the Keras model is untouched, and TensorFlow still loads it
    LSTMAutoencoderDetector.load(copy, engine="tensorflow")
    meta = json.loads((copy / "detector.json").read_text())
    meta["onnx_sha256"] = "not a digest"
    (copy / "detector.json").write_text(json.dumps(meta))
    with pytest.raises(ModelError, match="invalid field 'onnx_sha256'"):
        LSTMAutoencoderDetector.load(copy, engine="tensorflow")


def test_sequence_models_are_not_exported(tmp_path):
    seqs = [make_series(5 + i % 4, 2, seed=i) for i in range(12)]
    det = LSTMSequenceDetector(**TINY).fit(seqs)
    with pytest.raises(ConfigError, match="ONNX export is for models fitted on one series"):
        det.save(tmp_path / "seq", onnx=True)
    assert not (tmp_path / "seq").exists()


# Imported as a script by the subprocess below: any import of TensorFlow or Keras exits with 3.
NO_TF = """
import sys
class Refuse:
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in ("tensorflow", "keras"):
            print("imported " + name, file=sys.stderr)
            raise SystemExit(3)
sys.meta_path.insert(0, Refuse())
from anomaly.cli import main
sys.exit(main(sys.argv[1:]))
"""


def test_cli_scores_with_onnx_without_importing_tensorflow(exported, tmp_path):
    import subprocess

    data = write_csv(_with_spike(), tmp_path / "d.csv")
    model = exported["reconstruction"]
    env = {"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"}
    run = subprocess.run(
        [sys.executable, "-c", NO_TF, "score", str(data), "--model", str(model), "--out", str(tmp_path / "onnx.csv")],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert run.returncode == 0, run.stderr
    db = subprocess.run(
        [sys.executable, "-c", NO_TF, "score", str(data), "--model", str(model), "--db", str(tmp_path / "r.db")],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert db.returncode == 0, db.stderr
    a = pd.read_csv(tmp_path / "onnx.csv")
    b = LSTMAutoencoderDetector.load(model, engine="tensorflow").score(_with_spike())
    np.testing.assert_allclose(a["score"], b["score"], rtol=1e-5, atol=1e-7)
    assert (a["is_anomaly"].to_numpy() == b["is_anomaly"].to_numpy()).all() and a["is_anomaly"].any()


def test_cli_train_onnx_and_export_onnx(tiny_detector, tmp_path):
    data = write_csv(make_series(300, 2), tmp_path / "d.csv")
    plain = tiny_detector.save(tmp_path / "m", onnx=False)
    assert not (plain / "model.onnx").exists()
    missing = run_cli("score", data, "--model", plain, "--engine", "onnx")
    assert missing.returncode == 2
    assert missing.stderr.strip().splitlines() == [
        f"error: {plain}: has no ONNX export (trained with --no-onnx, or by an older "
        f"version); add one with 'anomaly export-onnx {plain}'"
    ]
    before = LSTMAutoencoderDetector.load(plain).score(make_series(300, 2))
    out = run_cli("export-onnx", plain)
    assert out.returncode == 0, out.stderr
    assert (plain / "model.onnx").is_file()
    after = LSTMAutoencoderDetector.load(plain, engine="onnx").score(make_series(300, 2))
    np.testing.assert_allclose(after["score"], before["score"], rtol=1e-5, atol=1e-7)
    from anomaly.artifacts import model_version

    version = model_version(plain)
    again = run_cli("export-onnx", plain)  # saved again, it was a new version: a "retrained" model to the scheduler
    assert again.returncode == 0 and "already runs without TensorFlow; nothing changed" in again.stdout
    assert model_version(plain) == version
    (plain / "model.onnx").unlink()  # lost: exported again, not said to exist
    again = run_cli("export-onnx", plain)
    assert again.returncode == 0 and again.stdout.startswith("exported ") and (plain / "model.onnx").is_file()
    bad = run_cli("export-onnx", tmp_path / "nowhere")
    assert bad.returncode == 2 and bad.stderr.startswith("error: ") and len(bad.stderr.strip().splitlines()) == 1
    tiny = ("--window", "8", "--units", "8", "--latent", "4", "--epochs", "1", "--quiet")
    trained = run_cli("train", data, "--model", tmp_path / "t", *tiny)  # exported by default
    assert trained.returncode == 0, trained.stderr
    assert {p.name for p in (tmp_path / "t").iterdir()} == {"model.keras", "model.onnx", "detector.json"}
    skipped = run_cli("train", data, "--model", tmp_path / "n", *tiny, "--no-onnx")
    assert skipped.returncode == 0, skipped.stderr
    assert {p.name for p in (tmp_path / "n").iterdir()} == {"model.keras", "detector.json"}


def test_job_engine_is_checked(tmp_path):
    from anomaly.scheduled import load_jobs

    spec = tmp_path / "jobs.toml"
    spec.write_text('[[jobs]]\ndata = "d.csv"\nmodel = "m"\nengine = "gpu"\n')
    with pytest.raises(DataError, match="'engine' must be auto, tensorflow or onnx, not 'gpu'"):
        load_jobs(spec)
    spec.write_text('[[jobs]]\ndata = "d.csv"\nmodel = "m"\nengine = "onnx"\n')
    assert load_jobs(spec)[0][0].engine == "onnx"


def test_both_runners_are_engines(exported):
    from anomaly.engine import Engine

    onnx = LSTMAutoencoderDetector.load(exported["reconstruction"], engine="onnx")._predictor()
    keras = LSTMAutoencoderDetector.load(exported["reconstruction"], engine="tensorflow")._predictor()
    assert isinstance(onnx, Engine) and isinstance(keras, Engine)
    assert type(onnx).__name__ == "OnnxModel" and type(keras).__name__ == "Predictor"


def test_exporting_a_bidirectional_model_logs_nothing(tmp_path, caplog):
    """tf2onnx notes "rnn ... following Reverse op isn't the part of bi-rnn" on bidirectional layers:
    a conversion detail, kept off the user's stderr (the export is still checked against TensorFlow above)."""
    import logging

    from anomaly.engine import OnnxModel, export_onnx
    from anomaly.model import build_model

    model = build_model(
        kind="aer", window=6, n_features=2, encoder_units=(4,), decoder_units=(4,), latent_dim=2, horizon=1, bidirectional=True
    ).infer
    with caplog.at_level(logging.INFO):
        export_onnx(model, tmp_path / "model.onnx")
    assert [r.getMessage() for r in caplog.records if r.name.startswith("tf2onnx") and r.levelno >= logging.WARNING] == []
    assert logging.getLogger("tf2onnx").level == logging.NOTSET  # restored
    x = np.random.default_rng(0).normal(size=(3, 6, 2)).astype(np.float32)
    for a, b in zip(OnnxModel(tmp_path / "model.onnx")(x), model.predict(x, verbose=0)):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-5)
