"""The Keras side: building the LSTM autoencoder, feeding it windows, running it fast.

Architecture (Srivastava et al. 2015, reconstruction variant): encoder LSTM layer(s) -> a Dense
bottleneck of ``latent_dim`` numbers (the window's fixed-length vector) -> RepeatVector(window)
-> decoder LSTM layer(s) -> a Dense layer applied at every time step.
"""

from __future__ import annotations

import numpy as np

from anomaly._tf import keras, tf
from anomaly.windows import gather

layers = keras.layers

LATENT_LAYER = "latent"


def build_autoencoder(
    *,
    window: int,
    n_features: int,
    encoder_units: tuple[int, ...],
    decoder_units: tuple[int, ...],
    latent_dim: int,
    activation: str = "tanh",
    dropout: float = 0.0,
    learning_rate: float = 1e-3,
) -> keras.Model:
    """A compiled reconstruction autoencoder for windows of shape ``(window, n_features)``."""
    inputs = keras.Input(shape=(window, n_features), name="window")
    x = inputs
    for i, units in enumerate(encoder_units):
        last = i == len(encoder_units) - 1
        x = layers.LSTM(units, activation=activation, dropout=dropout, return_sequences=not last, name=f"encoder_{i}")(x)
    latent = layers.Dense(latent_dim, name=LATENT_LAYER)(x)
    x = layers.RepeatVector(window, name="repeat")(latent)
    for i, units in enumerate(decoder_units):
        x = layers.LSTM(units, activation=activation, dropout=dropout, return_sequences=True, name=f"decoder_{i}")(x)
    # Dense on a 3-D tensor acts on the last axis with one set of weights for every step: exactly
    # TimeDistributed(Dense), without the wrapper that is slow in Keras 3 (keras-team/keras#21179).
    outputs = layers.Dense(n_features, name="reconstruction")(x)
    model = keras.Model(inputs, outputs, name="lstm_autoencoder")
    model.compile(optimizer=keras.optimizers.Adam(learning_rate=learning_rate), loss="mse")
    return model


def encoder_of(model: keras.Model) -> keras.Model:
    """The encoder alone: window in, fixed-length latent vector out (shares the trained weights)."""
    return keras.Model(model.inputs, model.get_layer(LATENT_LAYER).output, name="encoder")


class WindowBatches(keras.utils.PyDataset):
    """Training batches gathered from a series on demand, never all windows at once.

    Shuffles window order every epoch with its own seeded generator, so runs are reproducible.
    """

    def __init__(self, values: np.ndarray, starts: np.ndarray, window: int, batch_size: int, *, shuffle: bool, seed: int):
        super().__init__()
        self.values, self.starts, self.window, self.batch_size = values, starts, window, batch_size
        self.shuffle = shuffle
        self._rng = np.random.default_rng(seed)
        self._order = self._rng.permutation(len(starts)) if shuffle else np.arange(len(starts))

    def __len__(self) -> int:
        return -(-len(self.starts) // self.batch_size)

    def __getitem__(self, i: int):
        idx = self._order[i * self.batch_size : (i + 1) * self.batch_size]
        x = gather(self.values, self.starts[np.sort(idx)], self.window)
        return x, x

    def on_epoch_end(self) -> None:
        if self.shuffle:
            self._order = self._rng.permutation(len(self.starts))


class Predictor:
    """Runs a model on batches of windows through one traced ``tf.function`` (faster than ``predict``)."""

    def __init__(self, model: keras.Model):
        self._fn = tf.function(lambda x: model(x, training=False), reduce_retracing=True)

    def __call__(self, x: np.ndarray) -> np.ndarray:
        return np.asarray(self._fn(x))


class EpochProgress(keras.callbacks.Callback):
    """A tqdm bar over epochs showing loss and validation loss (stderr)."""

    def __init__(self, epochs: int):
        super().__init__()
        self.epochs = epochs
        self.bar = None

    def on_train_begin(self, logs=None):
        from tqdm.auto import tqdm

        self.bar = tqdm(total=self.epochs, desc="training", unit="epoch", leave=True)

    def on_epoch_end(self, epoch, logs=None):
        logs = logs or {}
        self.bar.set_postfix({k: f"{v:.5f}" for k, v in logs.items() if k in ("loss", "val_loss")})
        self.bar.update(1)

    def on_train_end(self, logs=None):
        if self.bar is not None:
            self.bar.close()


class EpochHook(keras.callbacks.Callback):
    """Calls ``fn(epoch, logs)`` after every epoch with the logs as plain floats (for a UI's progress)."""

    def __init__(self, fn):
        super().__init__()
        self.fn = fn

    def on_epoch_end(self, epoch, logs=None):
        self.fn(int(epoch), {k: float(v) for k, v in (logs or {}).items()})
