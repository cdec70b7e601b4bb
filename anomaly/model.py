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


# Scoring batch: 1024 windows per call was the fastest of 1024/4096/16384 with the unrolled XLA
# predictor on the 2-core CPU (bench/perf.py; see README "Performance"), and it keeps scoring memory
# at a few MiB per batch whatever the length of the series.
SCORE_BATCH = 1024
# Recurrent layers of at most this many steps are unrolled for XLA: the unrolled, compiled graph ran
# about 4x faster than the plain while-loop graph on CPU; longer sequences would compile too slowly.
MAX_UNROLL_STEPS = 128
# XLA compilation of the unrolled model costs seconds (6-30 s per batch shape on the shared 2-core
# machine) and saves about 0.3 ms per window, so it pays only on long inputs: below this many
# windows (e.g. an incremental batch of a scheduled scorer) the plain tf.function is used.
XLA_MIN_WINDOWS = 50_000


def _unrolled(model: keras.Model) -> keras.Model:
    """A copy of ``model`` whose recurrent layers are unrolled (same weights, same outputs).

    Unrolling turns each layer's while-loop into straight-line code that XLA can fuse across time
    steps (and, after a RepeatVector, compute the shared input projection once). Falls back to
    ``model`` itself when it cannot be cloned or has no short recurrent layer.
    """
    def unroll(layer):
        config = layer.get_config()
        if isinstance(layer, layers.RNN) and "unroll" in config:
            config["unroll"] = True
        return layer.__class__.from_config(config)

    steps = [layer.input.shape[1] for layer in model.layers if isinstance(layer, layers.RNN)]
    if not steps or any(s is None or s > MAX_UNROLL_STEPS for s in steps):
        return model
    try:
        clone = keras.models.clone_model(model, clone_function=unroll)
        clone.set_weights(model.get_weights())
    except Exception:  # an architecture clone_model cannot rebuild: run the original, just slower
        return model
    return clone


class Predictor:
    """Runs a model on windows through fixed-shape ``tf.function`` calls, XLA-compiled for long inputs.

    Faster than ``model.predict`` (no per-call Keras machinery). Inputs are cut into chunks of
    ``batch_size``; each chunk is zero-padded to a shape already traced (or, for a short input, to
    the next power of two), so a series of any length causes only a handful of traces and never one
    for its last, partial batch. Call :meth:`plan` with the number of windows about to be scored:
    from ``xla_min_windows`` on, an unrolled, XLA-compiled copy of the model is used (the weights are
    copied then: make a new predictor after training again).
    """

    def __init__(self, model: keras.Model, batch_size: int = SCORE_BATCH, *, xla_min_windows: int = XLA_MIN_WINDOWS):
        if batch_size < 1:
            raise ValueError("batch_size must be at least 1")
        self.model = model
        self.batch_size = int(batch_size)
        self.xla_min_windows = xla_min_windows
        self.use_xla = False
        self._fns: dict[bool, object] = {}
        self._sizes: dict[bool, set[int]] = {False: set(), True: set()}  # padded batch sizes traced

    def plan(self, n_windows: int) -> Predictor:
        """Choose the XLA path when ``n_windows`` is enough to pay for its compilation; returns self."""
        self.use_xla = n_windows >= self.xla_min_windows
        return self

    def _fn(self, xla: bool):
        if xla not in self._fns:
            runner = _unrolled(self.model) if xla else self.model
            self._fns[xla] = tf.function(lambda x: runner(x, training=False), jit_compile=xla)
        return self._fns[xla]

    def _padded_size(self, n: int, xla: bool) -> int:
        ready = [s for s in tuple(self._sizes[xla]) if s >= n]  # tuple(): atomic copy if threads share us
        if ready:
            return min(ready)
        size = min(self.batch_size, 1 << max(n - 1, 0).bit_length())
        self._sizes[xla].add(size)
        return size

    def __call__(self, x: np.ndarray) -> np.ndarray:
        x = np.asarray(x, dtype=np.float32)
        xla = self.use_xla
        fn = self._fn(xla)
        outputs = []
        for i in range(0, max(len(x), 1), self.batch_size):
            chunk = x[i : i + self.batch_size]
            size = self._padded_size(max(len(chunk), 1), xla)
            padded = np.concatenate([chunk, np.zeros((size - len(chunk),) + x.shape[1:], np.float32)]) if size > len(chunk) else chunk
            outputs.append(np.asarray(fn(padded))[: len(chunk)])
        return outputs[0] if len(outputs) == 1 else np.concatenate(outputs)


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
