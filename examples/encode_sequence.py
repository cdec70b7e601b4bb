"""Tutorial example 4: keep only the encoder and turn the sequence into a fixed-length vector.

Fits the reconstruction autoencoder of example 1, then :func:`anomaly.model.encoder_of` gives the
encoder alone (sharing the trained weights): 0.1 .. 0.9 in, ``latent_dim`` numbers out, usable as
features for plots, clustering or a classifier. Run: ``python examples/encode_sequence.py``.
"""

from __future__ import annotations

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from _tutorial import EPOCHS, SEQUENCE, SETTINGS, as_batch, fit, show  # noqa: E402

from anomaly.model import build_model, encoder_of  # noqa: E402
from anomaly.tfkeras import keras  # noqa: E402


def main(epochs: int = EPOCHS, seed: int = 1):
    """Fit, then return the encoder's vector of the sequence, shape ``(latent_dim,)``."""
    keras.utils.set_random_seed(seed)
    x = as_batch(SEQUENCE)
    model = build_model(kind="reconstruction", window=len(SEQUENCE), n_features=1, **SETTINGS).train
    fit(model, x, x, epochs)
    vector = encoder_of(model).predict(x, verbose=0)[0]
    print(f"encoder output: shape {vector.shape}")
    show("vector", vector)
    return vector


if __name__ == "__main__":
    main()
