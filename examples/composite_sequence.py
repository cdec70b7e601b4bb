"""Tutorial example 3: the composite model, one encoder and two decoders trained together.

One decoder reconstructs 0.1 .. 0.9, the other predicts 0.2 .. 0.9 (``kind="composite"``).
Run: ``python examples/composite_sequence.py``.
"""

from __future__ import annotations

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from _tutorial import EPOCHS, SEQUENCE, SETTINGS, as_batch, fit, show  # noqa: E402

from anomaly.model import build_model  # noqa: E402
from anomaly.tfkeras import keras  # noqa: E402


def main(epochs: int = EPOCHS, seed: int = 1):
    """Fit on the one sequence; return ``(reconstruction (9,), prediction (8,))``."""
    keras.utils.set_random_seed(seed)
    x, future = as_batch(SEQUENCE), as_batch(SEQUENCE[1:])
    model = build_model(kind="composite", window=len(SEQUENCE), horizon=len(SEQUENCE) - 1, n_features=1, **SETTINGS).train
    fit(model, x, (x, future), epochs)
    reconstruction, prediction = (out[0, :, 0] for out in model.predict(x, verbose=0))
    show("input        ", SEQUENCE)
    show("reconstructed", reconstruction)
    show("predicted    ", prediction)
    return reconstruction, prediction


if __name__ == "__main__":
    main()
