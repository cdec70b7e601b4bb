"""The benchmark's FLOP count matches the model the detector builds (its GFLOP/s rests on it)."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pytest

from anomaly.model import build_autoencoder

_spec = importlib.util.spec_from_file_location("perf", Path(__file__).resolve().parents[1] / "bench" / "perf.py")
perf = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(perf)


def _macs_from_weights(model, window: int) -> int:
    """Multiply-adds of one window, read off the layers' weight shapes."""
    macs = 0
    for layer in model.layers:
        kernels = [w for w in layer.weights if len(w.shape) == 2]  # kernel (and recurrent kernel), no biases
        size = sum(int(np.prod(w.shape)) for w in kernels)
        steps = window if (layer.name.startswith(("encoder", "decoder")) or layer.name == "reconstruction") else 1
        macs += steps * size
    return macs


@pytest.mark.parametrize("window,n_sensors,units,latent", [(32, 1, 64, 16), (8, 3, 5, 2)])
def test_flops_per_window_counts_every_multiply_add(window, n_sensors, units, latent):
    model = build_autoencoder(
        window=window, n_features=n_sensors, encoder_units=(units,), decoder_units=(units,), latent_dim=latent
    )
    assert perf.flops_per_window(window, n_sensors, units, latent) == 2 * _macs_from_weights(model, window)


def test_naive_windows_are_every_stride_one_window():
    values = np.arange(20, dtype=float).reshape(10, 2)
    windows = perf.naive_windows(values, 4)
    assert windows.shape == (7, 4, 2) and windows.dtype == np.float32
    np.testing.assert_array_equal(windows[3], values[3:7])
