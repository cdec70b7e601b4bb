"""The tutorial's four examples (examples/*.py) run and reproduce its results within 0.05."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"
SEQUENCE = np.arange(1, 10) / 10


def run_example(name: str, capsys, **kwargs):
    """Import ``examples/<name>.py`` and call its ``main``; return its result and what it printed."""
    spec = importlib.util.spec_from_file_location(f"example_{name}", EXAMPLES / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    result = module.main(**kwargs)
    return result, capsys.readouterr().out


def test_reconstruct_sequence(capsys):
    y, out = run_example("reconstruct_sequence", capsys)
    assert y.shape == (9,)
    np.testing.assert_allclose(y, SEQUENCE, atol=0.05)
    assert "reconstructed: 0.1" in out


def test_predict_sequence(capsys):
    y, out = run_example("predict_sequence", capsys)
    assert y.shape == (8,)
    np.testing.assert_allclose(y, SEQUENCE[1:], atol=0.05)
    assert "predicted: 0.1" in out or "predicted: 0.2" in out


def test_composite_sequence(capsys):
    (reconstruction, prediction), out = run_example("composite_sequence", capsys)
    assert reconstruction.shape == (9,) and prediction.shape == (8,)
    np.testing.assert_allclose(reconstruction, SEQUENCE, atol=0.05)
    np.testing.assert_allclose(prediction, SEQUENCE[1:], atol=0.05)
    assert "reconstructed" in out and "predicted" in out


def test_encode_sequence_is_latent_sized_and_deterministic(capsys):
    first, out = run_example("encode_sequence", capsys, epochs=20)
    again, _ = run_example("encode_sequence", capsys, epochs=20)
    other, _ = run_example("encode_sequence", capsys, epochs=20, seed=2)
    assert first.shape == (100,) and np.isfinite(first).all()
    np.testing.assert_array_equal(first, again)
    assert not np.allclose(first, other)
    assert "encoder output: shape (100,)" in out
