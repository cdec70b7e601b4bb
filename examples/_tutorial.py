"""Shared set-up of the tutorial examples: the sequence 0.1 .. 0.9 and the model settings.

The examples reproduce J. Brownlee, "A Gentle Introduction to LSTM Autoencoders" (Machine Learning
Mastery, 2018): one sequence of nine numbers, LSTM(100, relu) layers, Adam on the mean squared error,
300 epochs. The one difference is this package's architecture: a Dense bottleneck (``latent``) of
100 numbers after the encoder, which is the vector the standalone encoder returns.
"""

from __future__ import annotations

import numpy as np

SEQUENCE = np.array([0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9], dtype=np.float32)
EPOCHS = 300
SETTINGS = dict(encoder_units=(100,), decoder_units=(100,), latent_dim=100, activation="relu", learning_rate=1e-3)


def as_batch(values: np.ndarray) -> np.ndarray:
    """One sample of ``(steps, 1 feature)``: the shape the models take."""
    return values.reshape(1, len(values), 1)


def fit(model, x, targets, epochs: int) -> None:
    """``epochs`` Adam steps on the one sample, run as one epoch of ``epochs`` identical batches.

    The same gradient steps as ``model.fit(x, targets, epochs=epochs)`` (checked: equal outputs),
    without Keras' per-epoch overhead, which made the examples several times slower.
    """
    repeat = lambda a: np.repeat(a, epochs, axis=0)  # noqa: E731
    y = tuple(repeat(t) for t in targets) if isinstance(targets, tuple) else repeat(targets)
    model.fit(repeat(x), y, batch_size=1, epochs=1, shuffle=False, verbose=0)


def show(name: str, values: np.ndarray) -> None:
    print(f"{name}: " + " ".join(f"{v:.3f}" for v in np.ravel(values)))
