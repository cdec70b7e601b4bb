"""The Keras side: building the LSTM autoencoder, feeding it windows, running it fast.

Architecture (Srivastava et al. 2015): encoder LSTM layer(s) -> a Dense bottleneck of
``latent_dim`` numbers (the window's fixed-length vector) -> one or two decoders (reconstruct the
window, predict the steps after it), each LSTM layer(s) -> a Dense layer applied at every step.
See :func:`build_model`.
"""

from __future__ import annotations

import contextlib
import signal
import threading

import numpy as np

from anomaly.tfkeras import keras, tf
from anomaly.windows import gather

layers = keras.layers

LATENT_LAYER = "latent"


MODEL_KINDS = ("reconstruction", "prediction", "composite", "aer")
MASK_LAYER = "mask"
RECONSTRUCTION = "reconstruction"  # name of the reconstruction decoder's output layer
PREDICTION = "prediction"  # name of the prediction decoder's output layer
BACKWARD = "backward"  # name of the backward prediction decoder's output layer (kind "aer")
# AER's loss weights (Wong et al. 2022; Orion's aer.py): backward, reconstruction, forward
AER_LOSS_WEIGHTS = (0.25, 0.5, 0.25)


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
    return build_model(
        kind="reconstruction",
        window=window,
        n_features=n_features,
        encoder_units=encoder_units,
        decoder_units=decoder_units,
        latent_dim=latent_dim,
        activation=activation,
        dropout=dropout,
        learning_rate=learning_rate,
    ).train


class Built:
    """The models of one architecture, sharing their layers (and so their weights).

    ``train`` is fitted; ``infer`` scores and is saved (one input, the window; its outputs are
    ``output_names``, in that order). They are the same model unless the decoder is conditional:
    then ``train`` also takes the teacher-forcing inputs and ``infer`` feeds each decoder its own
    previous output, step by step.
    """

    def __init__(self, train: keras.Model, infer: keras.Model, output_names: list[str]):
        self.train, self.infer, self.output_names = train, infer, output_names


def build_model(
    *,
    kind: str = "reconstruction",
    window: int,
    n_features: int,
    encoder_units: tuple[int, ...],
    decoder_units: tuple[int, ...],
    latent_dim: int,
    horizon: int = 1,
    n_outputs: int | None = None,
    activation: str = "tanh",
    dropout: float = 0.0,
    learning_rate: float = 1e-3,
    conditional: bool = False,
    prediction_weight: float = 1.0,
    pad_value: float | None = None,
    bidirectional: bool = False,
) -> Built:
    """The compiled LSTM autoencoder of ``kind`` (Srivastava et al. 2015) for ``(window, n_features)`` inputs.

    - ``reconstruction``: one decoder rebuilds the ``window`` input steps (reversed or not: that is
      the caller's choice of target);
    - ``prediction``: one decoder predicts the ``horizon`` steps after the window;
    - ``composite``: one encoder, both decoders, trained together on
      ``mse(reconstruction) + prediction_weight * mse(prediction)``;
    - ``aer`` (AER, Wong et al. 2022): bidirectional layers and three decoders, the ``horizon``
      steps before the window, the window, and the ``horizon`` steps after it, trained on
      ``0.25 * mse(backward) + 0.5 * mse(reconstruction) + 0.25 * mse(prediction)``.

    Encoder: LSTM layer(s) -> Dense bottleneck ``latent`` (the window's fixed-length vector). An
    unconditioned decoder reads the latent vector repeated at every step (RepeatVector); a
    ``conditional`` one reads, at each step, the latent vector next to its previous output (zeros at
    the first step; the true previous value during training, i.e. teacher forcing).
    ``pad_value`` adds a Masking layer: input steps whose every feature equals it are skipped by
    the encoder (collections of padded sequences). Built-in layers only, so the saved model loads
    with ``safe_mode=True``. ``n_outputs`` (default ``n_features``): the features each decoder step
    outputs, fewer than its inputs when some inputs are context only (the caller picks the targets).
    ``bidirectional`` wraps every LSTM layer in ``Bidirectional`` (read forwards and backwards, the
    two outputs concatenated), as AER does (Wong et al. 2022); not with a conditional decoder, which
    must run forwards one step at a time.
    """
    n_outputs = n_features if n_outputs is None else n_outputs
    if kind not in MODEL_KINDS:
        raise ValueError(f"unknown model kind {kind!r}")
    bidirectional = bidirectional or kind == "aer"  # AER's encoder and decoders read both ways
    if bidirectional and conditional:
        raise ValueError("a conditional decoder runs forwards one step at a time: it cannot be bidirectional")
    inputs = keras.Input(shape=(window, n_features), name="window")
    x = inputs
    if pad_value is not None:
        x = layers.Masking(mask_value=pad_value, name=MASK_LAYER)(x)
    for i, units in enumerate(encoder_units):
        last = i == len(encoder_units) - 1
        x = _lstm(units, f"encoder_{i}", bidirectional, activation=activation, dropout=dropout, return_sequences=not last)(x)
    latent = layers.Dense(latent_dim, name=LATENT_LAYER)(x)

    heads = []  # (output name, steps)
    if kind == "aer":
        heads.append((BACKWARD, horizon))
    if kind in ("reconstruction", "composite", "aer"):
        heads.append((RECONSTRUCTION, window))
    if kind in ("prediction", "composite", "aer"):
        heads.append((PREDICTION, horizon))
    prefix = {RECONSTRUCTION: "decoder", PREDICTION: "predictor", BACKWARD: "backcaster"}

    teachers, train_outputs, infer_outputs = [], [], []
    for name, steps in heads:
        decoder = [
            _decoder_lstm(units, activation, dropout, conditional, f"{prefix[name]}_{i}", bidirectional)
            for i, units in enumerate(decoder_units)
        ]
        # Dense on a 3-D tensor acts on the last axis with one set of weights for every step: exactly
        # TimeDistributed(Dense), without the wrapper that is slow in Keras 3 (keras-team/keras#21179).
        head = layers.Dense(n_outputs, name=name)
        if not conditional:
            y = layers.RepeatVector(steps, name="repeat" if name == RECONSTRUCTION else f"repeat_{name}")(latent)
            for lstm in decoder:
                y = lstm(y)
            out = head(y)
            train_outputs.append(out)
            infer_outputs.append(out)
            continue
        teacher = keras.Input(shape=(steps, n_outputs), name=f"teacher_{name}")
        teachers.append(teacher)
        context = layers.RepeatVector(steps, name=f"context_{name}")(latent)
        y = layers.Concatenate(axis=-1, name=f"teacher_in_{name}")([context, teacher])
        for lstm in decoder:
            y = lstm(y)[0]
        train_outputs.append(head(y))
        infer_outputs.append(_free_running(inputs, latent, decoder, head, steps, name))

    def compiled(model_inputs, outputs, model_name):
        model = keras.Model(model_inputs, outputs if len(outputs) > 1 else outputs[0], name=model_name)
        if len(outputs) > 1:  # composite: mse(reconstruction) + prediction_weight * mse(prediction); aer: fixed weights
            weights = list(AER_LOSS_WEIGHTS) if kind == "aer" else [1.0, float(prediction_weight)]
            model.compile(
                optimizer=keras.optimizers.Adam(learning_rate=learning_rate),
                loss=["mse"] * len(outputs),
                loss_weights=weights,
            )
        else:
            model.compile(optimizer=keras.optimizers.Adam(learning_rate=learning_rate), loss="mse")
        return model

    model_name = "lstm_autoencoder" if kind == "reconstruction" else f"lstm_{kind}"
    infer = compiled(inputs, infer_outputs, model_name)
    train = infer if not conditional else compiled([inputs, *teachers], train_outputs, f"{model_name}_teacher_forced")
    return Built(train, infer, [name for name, _ in heads])


def _lstm(units: int, name: str, bidirectional: bool, **options):
    """An LSTM layer named ``name``; a bidirectional one is wrapped, and the wrapper takes the name
    (so ``encoder_0``, ``decoder_0``... name the same parts of every model)."""
    lstm = layers.LSTM(units, name=f"lstm_{name}" if bidirectional else name, **options)
    return layers.Bidirectional(lstm, name=name) if bidirectional else lstm


def _decoder_lstm(units: int, activation: str, dropout: float, conditional: bool, name: str, bidirectional: bool = False):
    # A conditional decoder is also run one step at a time, carrying its state: it returns it.
    return _lstm(
        units, name, bidirectional, activation=activation, dropout=dropout, return_sequences=True, return_state=conditional
    )


def _free_running(inputs, latent, decoder, head, steps: int, name: str):
    """The conditional decoder at inference: ``steps`` single steps, each fed the previous output.

    Built from the trained layers (shared weights) with built-in layers only. The zero "previous
    output" of the first step is the first input step scaled by 0 (Cropping1D + Rescaling), which
    keeps the graph free of Lambda layers.
    """
    context = layers.RepeatVector(1, name=f"step_context_{name}")(latent)
    first = layers.Cropping1D((0, inputs.shape[1] - 1), name=f"first_step_{name}")(inputs)
    previous = layers.Rescaling(0.0, name=f"start_{name}")(first)
    states = [None] * len(decoder)
    outputs = []
    for _ in range(steps):
        y = layers.Concatenate(axis=-1)([context, previous])
        for i, lstm in enumerate(decoder):
            y, h, c = lstm(y, initial_state=states[i]) if states[i] is not None else lstm(y)
            states[i] = [h, c]
        previous = head(y)
        outputs.append(previous)
    return layers.Concatenate(axis=1, name=f"free_{name}")(outputs) if steps > 1 else outputs[0]


def encoder_of(model: keras.Model) -> keras.Model:
    """The encoder alone: window in, fixed-length latent vector out (shares the trained weights).

    Rebuilt by calling the trained layers on a new input, so it works for every kind, whatever
    other graphs share those layers.
    """
    inputs = keras.Input(shape=tuple(model.input_shape[1:]), name="window")
    x = inputs
    names = {layer.name for layer in model.layers}
    if MASK_LAYER in names:
        x = model.get_layer(MASK_LAYER)(x)
    i = 0
    while f"encoder_{i}" in names:
        x = model.get_layer(f"encoder_{i}")(x)
        i += 1
    return keras.Model(inputs, model.get_layer(LATENT_LAYER)(x), name="encoder")


def output_names(model: keras.Model) -> list[str]:
    """Which decoder each output of a saved (inference) model comes from, in order."""
    names = {layer.name for layer in model.layers}
    return [n for n in (BACKWARD, RECONSTRUCTION, PREDICTION) if n in names]


class Batches(keras.utils.PyDataset):
    """Training batches built on demand by ``make(indices)``, never all samples at once.

    Shuffles sample order every epoch with its own seeded generator, so runs are reproducible;
    each batch's indices are sorted (contiguous reads).
    """

    def __init__(self, n: int, make, batch_size: int, *, shuffle: bool, seed: int):
        super().__init__()
        self.n, self.make, self.batch_size, self.shuffle = n, make, batch_size, shuffle
        self._rng = np.random.default_rng(seed)
        self._order = self._rng.permutation(n) if shuffle else np.arange(n)

    def __len__(self) -> int:
        return -(-self.n // self.batch_size)

    def __getitem__(self, i: int):
        return self.make(np.sort(self._order[i * self.batch_size : (i + 1) * self.batch_size]))

    def on_epoch_end(self) -> None:
        if self.shuffle:
            self._order = self._rng.permutation(self.n)


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


# Scoring batch: with the unrolled XLA predictor 512-4096 windows per call ran within 6% of each
# other on one idle core (26.5k, 25.9k, 25.0k, 25.6k windows/s; the plain graph 15-17k from 256 to
# 1024), and 1024 keeps scoring memory at a few MiB per batch whatever the length of the series.
SCORE_BATCH = 1024
# Recurrent layers of at most this many steps are unrolled for XLA: the unrolled, compiled graph ran
# about 4x faster than the plain while-loop graph on CPU; longer sequences would compile too slowly.
MAX_UNROLL_STEPS = 128
# XLA compilation of the unrolled model costs 5-7 s per batch shape and saves 20-28 us per window
# (one idle core, bench/perf.py's model: 15k -> 26k windows/s with 1 sensor, 14k -> 20k with 8), so
# it pays from about 250,000 windows: below that (e.g. an incremental batch of a scheduled scorer)
# the plain tf.function is used.
XLA_MIN_WINDOWS = 250_000


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

    def steps_of(layer) -> int | None:
        first = layer.input[0] if isinstance(layer.input, (list, tuple)) else layer.input  # [x, mask] when masked
        return first.shape[1]

    try:
        steps = [steps_of(layer) for layer in model.layers if isinstance(layer, layers.RNN)]
    except (AttributeError, ValueError, IndexError):  # a layer without a single clear input: keep the model
        return model
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

    def __call__(self, x: np.ndarray):
        """The model's output for ``x``: an array, or a list of arrays for a model with several outputs (a composite)."""
        x = np.asarray(x, dtype=np.float32)
        xla = self.use_xla
        fn = self._fn(xla)
        outputs = []
        for i in range(0, max(len(x), 1), self.batch_size):
            chunk = x[i : i + self.batch_size]
            size = self._padded_size(max(len(chunk), 1), xla)
            padded = (
                np.concatenate([chunk, np.zeros((size - len(chunk),) + x.shape[1:], np.float32)]) if size > len(chunk) else chunk
            )
            out = fn(padded)
            outs = out if isinstance(out, (list, tuple)) else [out]
            outputs.append([np.asarray(o)[: len(chunk)] for o in outs])
        merged = [parts[0] if len(outputs) == 1 else np.concatenate(parts) for parts in zip(*outputs)]
        return merged if len(merged) > 1 else merged[0]


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


class StopSignals(keras.callbacks.Callback):
    """Ctrl-C and SIGTERM during ``fit``: stop at the next batch boundary, then deliver the signal.

    Python raises KeyboardInterrupt at whatever bytecode the main thread runs; inside Keras' loop that
    can be mid-way through the PyDataset/tf.data machinery, and such an interrupt has crashed the
    process (glibc "free(): invalid next size", SIGABRT) instead of ending it with exit code 130.
    Keras' own ``stop_training``/``stop_evaluating`` flags end the loop cleanly instead; the signal is
    re-raised by :meth:`deferred` once ``fit`` has returned. A second signal is not deferred.
    Outside the main thread (a Streamlit script thread) nothing is changed: signals cannot be handled
    there, and none arrive.
    """

    SIGNALS = (signal.SIGINT, signal.SIGTERM)

    def __init__(self):
        super().__init__()
        self.received: int | None = None
        self._previous: dict[int, object] = {}

    def _handle(self, signum, frame) -> None:
        if self.received is not None:  # asked twice: stop now, as if nothing were deferred
            self._restore()
            signal.raise_signal(signum)
            return
        self.received = signum
        if self.model is not None:
            self.model.stop_training = True
            self.model.stop_evaluating = True

    def _restore(self) -> None:
        for signum, handler in self._previous.items():
            signal.signal(signum, handler)
        self._previous = {}

    @contextlib.contextmanager
    def deferred(self):
        """Install the handlers around the ``with`` body; on a clean exit, re-raise a deferred signal
        through the handler it would have met (KeyboardInterrupt, the CLI's Terminated, or default)."""
        if threading.current_thread() is threading.main_thread():
            for signum in self.SIGNALS:
                previous = signal.getsignal(signum)
                if previous not in (signal.SIG_IGN, None):  # None: installed outside Python; leave it
                    self._previous[signum] = signal.signal(signum, self._handle)
        try:
            yield self
        finally:
            self._restore()
        if self.received is not None:
            signal.raise_signal(self.received)

    # A signal that arrived while Keras traced or validated: the next batch boundary ends the loop too.
    def on_train_batch_end(self, batch, logs=None):
        if self.received is not None:
            self.model.stop_training = True

    def on_test_batch_end(self, batch, logs=None):
        if self.received is not None:
            self.model.stop_evaluating = True


class EpochHook(keras.callbacks.Callback):
    """Calls ``fn(epoch, logs)`` after every epoch with the logs as plain floats (for a UI's progress)."""

    def __init__(self, fn):
        super().__init__()
        self.fn = fn

    def on_epoch_end(self, epoch, logs=None):
        self.fn(int(epoch), {k: float(v) for k, v in (logs or {}).items()})
