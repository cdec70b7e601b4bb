"""Tutorial example 2: read 0.1 .. 0.9 and predict the sequence one step ahead, 0.2 .. 0.9.

As in the tutorial, the decoder outputs the input shifted by one step: 8 values for 9 inputs
(``kind="prediction"``, ``horizon=8``). Run: ``python examples/predict_sequence.py``.
"""

from __future__ import annotations

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from _tutorial import EPOCHS, SEQUENCE, SETTINGS, as_batch, fit, show  # noqa: E402

from anomaly.model import build_model  # noqa: E402
from anomaly.tfkeras import keras  # noqa: E402


def main(epochs: int = EPOCHS, seed: int = 1):
    """Fit on the one sequence and return the predicted ``0.2 .. 0.9``, shape ``(8,)``."""
    keras.utils.set_random_seed(seed)
    x, target = as_batch(SEQUENCE), as_batch(SEQUENCE[1:])
    model = build_model(kind="prediction", window=len(SEQUENCE), horizon=len(SEQUENCE) - 1, n_features=1, **SETTINGS).train
    fit(model, x, target, epochs)
    y = model.predict(x, verbose=0)[0, :, 0]
    show("input    ", SEQUENCE)
    show("predicted", y)
    return y


if __name__ == "__main__":
    main()
