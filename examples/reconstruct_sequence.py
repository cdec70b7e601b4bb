"""Tutorial example 1: reconstruct the sequence 0.1 .. 0.9 with a reconstruction LSTM autoencoder.

Run: ``python examples/reconstruct_sequence.py``; prints the input and its reconstruction.
"""

from __future__ import annotations

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from _tutorial import EPOCHS, SEQUENCE, SETTINGS, as_batch, fit, show  # noqa: E402

from anomaly.model import build_model  # noqa: E402
from anomaly.tfkeras import keras  # noqa: E402


def main(epochs: int = EPOCHS, seed: int = 1):
    """Fit on the one sequence and return its reconstruction, shape ``(9,)``."""
    keras.utils.set_random_seed(seed)
    x = as_batch(SEQUENCE)
    model = build_model(kind="reconstruction", window=len(SEQUENCE), n_features=1, **SETTINGS).train
    fit(model, x, x, epochs)
    y = model.predict(x, verbose=0)[0, :, 0]
    show("input        ", SEQUENCE)
    show("reconstructed", y)
    return y


if __name__ == "__main__":
    main()
