"""Keras builders of the model family (anomaly/model.py): shapes, teacher forcing, safe loading."""

from __future__ import annotations

import signal

import numpy as np
import pytest

from anomaly.model import Batches, Predictor, StopSignals, build_autoencoder, build_model, encoder_of, output_names
from anomaly.tfkeras import keras
from anomaly.windows import shift_right

W, F, H, LATENT = 6, 2, 3, 4
SMALL = dict(window=W, n_features=F, encoder_units=(8,), decoder_units=(8,), latent_dim=LATENT, horizon=H)
KINDS = ["reconstruction", "prediction", "composite"]


def windows(n: int = 5, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).normal(size=(n, W, F)).astype(np.float32)


def as_list(out) -> list[np.ndarray]:
    return [np.asarray(o) for o in out] if isinstance(out, (list, tuple)) else [np.asarray(out)]


def test_default_reconstruction_architecture_is_unchanged():
    model = build_autoencoder(window=W, n_features=F, encoder_units=(8,), decoder_units=(8,), latent_dim=LATENT)
    assert [layer.name for layer in model.layers] == ["window", "encoder_0", "latent", "repeat", "decoder_0", "reconstruction"]
    assert model.name == "lstm_autoencoder"


@pytest.mark.parametrize("conditional", [False, True])
@pytest.mark.parametrize("kind", KINDS)
def test_output_shapes_of_every_kind(kind, conditional):
    keras.utils.set_random_seed(0)
    built = build_model(kind=kind, conditional=conditional, **SMALL)
    steps = {"reconstruction": W, "prediction": H}
    assert (
        built.output_names == output_names(built.infer) == ([kind] if kind != "composite" else ["reconstruction", "prediction"])
    )
    assert tuple(built.infer.input_shape) == (None, W, F)
    outs = as_list(built.infer(windows(), training=False))
    assert [o.shape for o in outs] == [(5, steps[name], F) for name in built.output_names]
    assert encoder_of(built.infer)(windows()).shape == (5, LATENT)
    if conditional:  # trained with one teacher-forcing input per decoder
        assert len(built.train.inputs) == 1 + len(built.output_names)
    else:
        assert built.train is built.infer


@pytest.mark.parametrize("kind", KINDS)
def test_conditional_inference_feeds_back_its_own_outputs(kind):
    """Free-running decoding equals the teacher-forced model fed the free-running outputs, shifted."""
    keras.utils.set_random_seed(1)
    built = build_model(kind=kind, conditional=True, **SMALL)
    x = windows()
    free = as_list(built.infer(x, training=False))
    forced = as_list(built.train([x, *[shift_right(o) for o in free]], training=False))
    for a, b in zip(free, forced):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)
    # and the teacher input matters: feeding zeros instead gives other outputs
    other = as_list(built.train([x, *[np.zeros_like(o) for o in free]], training=False))
    assert not np.allclose(free[0][:, 1:], other[0][:, 1:])


@pytest.mark.parametrize(
    "kind,conditional,masked,bidirectional",
    [
        ("reconstruction", True, False, False),
        ("prediction", False, False, False),
        ("prediction", True, False, False),
        ("composite", True, True, False),
        ("composite", False, False, False),
        ("composite", False, True, True),
    ],
)
def test_saved_models_load_in_safe_mode_with_equal_outputs(tmp_path, kind, conditional, masked, bidirectional):
    keras.utils.set_random_seed(2)
    built = build_model(
        kind=kind, conditional=conditional, pad_value=-1e4 if masked else None, bidirectional=bidirectional, **SMALL
    )
    path = tmp_path / "m.keras"
    built.infer.save(path)
    loaded = keras.saving.load_model(path, compile=False, safe_mode=True)
    x = windows()
    for a, b in zip(as_list(built.infer(x, training=False)), as_list(loaded(x, training=False))):
        np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(encoder_of(loaded)(x), encoder_of(built.infer)(x))
    assert not any(type(layer).__name__ == "Lambda" for layer in loaded.layers)


def test_masked_encoder_skips_padded_steps():
    """A sequence padded to the window encodes as if the padding were not there."""
    keras.utils.set_random_seed(3)
    pad = -1e4
    built = build_model(kind="reconstruction", pad_value=pad, **SMALL)
    encoder = encoder_of(built.infer)
    x = windows(2)
    x[:, 4:] = pad  # four real steps, then two padded ones
    # the same four real steps in an unmasked model of window 4 (same weights) give the same vector
    keras.utils.set_random_seed(3)
    short = build_model(kind="reconstruction", **{**SMALL, "window": 4})
    short.infer.set_weights(built.infer.get_weights())
    np.testing.assert_allclose(encoder_of(short.infer)(x[:, :4]), encoder(x), rtol=1e-5, atol=1e-6)


def test_composite_loss_weights_the_prediction():
    keras.utils.set_random_seed(4)
    x, future = windows(8), windows(8, seed=9)[:, :H]
    losses = {}
    for weight in (1.0, 3.0):
        keras.utils.set_random_seed(4)
        model = build_model(kind="composite", prediction_weight=weight, **SMALL).train
        losses[weight] = model.evaluate(x, (x, future), verbose=0, return_dict=True)
    rec, pred = losses[1.0]["reconstruction_loss"], losses[1.0]["prediction_loss"]
    assert losses[1.0]["loss"] == pytest.approx(rec + pred, rel=1e-5)
    assert losses[3.0]["loss"] == pytest.approx(rec + 3 * pred, rel=1e-5)


def test_batches_shuffle_reproducibly_and_cover_every_sample():
    seen = []
    data = Batches(10, lambda idx: idx, 4, shuffle=True, seed=5)
    again = Batches(10, lambda idx: idx, 4, shuffle=True, seed=5)
    assert len(data) == 3
    for _ in range(2):
        batches = [data[i] for i in range(len(data))]
        assert [list(b) for b in batches] == [list(again[i]) for i in range(len(again))]
        assert all(list(b) == sorted(b) for b in batches)
        assert sorted(np.concatenate(batches)) == list(range(10))
        seen.append(np.concatenate(batches))
        data.on_epoch_end()
        again.on_epoch_end()
    assert not np.array_equal(seen[0], seen[1])


class SignalAt(keras.callbacks.Callback):
    """Sends ``signum`` to this process at training batch ``at`` (``times`` times); counts batches."""

    def __init__(self, signum, at: int, times: int = 1):
        super().__init__()
        self.signum, self.at, self.times, self.batches = signum, at, times, 0

    def on_train_batch_end(self, batch, logs=None):
        self.batches += 1
        if self.batches == self.at:
            for _ in range(self.times):
                signal.raise_signal(self.signum)


class Stopped(Exception):
    pass


def fit_with(callback, stop: StopSignals) -> None:
    keras.utils.set_random_seed(0)
    model = build_model(kind="reconstruction", **SMALL).train
    x = windows(64)
    with stop.deferred():
        model.fit(x, x, batch_size=4, epochs=5, validation_data=(x[:8], x[:8]), callbacks=[callback, stop], verbose=0)


@pytest.fixture
def python_sigint():
    """Python's own Ctrl-C handler for the test: a runner started in the background (``cmd &`` in a
    script, nohup) ignores SIGINT, and StopSignals rightly leaves an ignored signal alone."""
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    yield
    signal.signal(signal.SIGINT, previous)


def test_an_ignored_ctrl_c_stays_ignored_through_training():
    previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        signal_at = SignalAt(signal.SIGINT, at=3)
        stop = StopSignals()
        fit_with(signal_at, stop)  # no KeyboardInterrupt
        assert (signal_at.batches, stop.received) == (5 * 16, None)
        assert signal.getsignal(signal.SIGINT) is signal.SIG_IGN
    finally:
        signal.signal(signal.SIGINT, previous)


@pytest.mark.usefixtures("python_sigint")
def test_ctrl_c_during_training_stops_at_the_batch_boundary_then_interrupts():
    signal_at = SignalAt(signal.SIGINT, at=3)
    stop = StopSignals()
    with pytest.raises(KeyboardInterrupt):
        fit_with(signal_at, stop)
    assert signal_at.batches == 3, "training went on after Ctrl-C"
    assert stop.received == signal.SIGINT
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler, "the handler was not restored"


def test_sigterm_during_training_reaches_the_previous_handler_after_fit():
    def handler(signum, frame):
        raise Stopped()

    previous = signal.signal(signal.SIGTERM, handler)
    try:
        signal_at = SignalAt(signal.SIGTERM, at=2)
        with pytest.raises(Stopped):
            fit_with(signal_at, StopSignals())
        assert signal_at.batches == 2
        assert signal.getsignal(signal.SIGTERM) is handler
    finally:
        signal.signal(signal.SIGTERM, previous)


@pytest.mark.usefixtures("python_sigint")
def test_a_second_ctrl_c_is_not_deferred():
    signal_at = SignalAt(signal.SIGINT, at=2, times=2)
    stop = StopSignals()
    with pytest.raises(KeyboardInterrupt):
        fit_with(signal_at, stop)
    assert signal_at.batches == 2
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler


@pytest.mark.usefixtures("python_sigint")
def test_training_without_a_signal_raises_nothing_and_restores_the_handlers():
    signal_at = SignalAt(signal.SIGINT, at=0)
    fit_with(signal_at, StopSignals())
    assert signal_at.batches == 5 * 16
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler


def test_unknown_kind_is_refused():
    with pytest.raises(ValueError, match="unknown model kind"):
        build_model(kind="forecast", **SMALL)


@pytest.mark.parametrize("kind,conditional,masked", [("composite", True, True), ("prediction", False, False)])
def test_xla_predictor_matches_the_plain_one_for_other_kinds(kind, conditional, masked):
    from anomaly.model import Predictor

    keras.utils.set_random_seed(5)
    built = build_model(kind=kind, conditional=conditional, pad_value=-1e4 if masked else None, **SMALL)
    x = windows(7)
    if masked:
        x[:3, 4:] = -1e4  # padded steps
    plain = as_list(Predictor(built.infer)(x))
    fast = as_list(Predictor(built.infer, xla_min_windows=1).plan(len(x))(x))
    assert (
        [p.shape for p in plain]
        == [f.shape for f in fast]
        == [(7, W if n == "reconstruction" else H, F) for n in built.output_names]
    )
    for p, f in zip(plain, fast):
        np.testing.assert_allclose(p, f, rtol=1e-5, atol=1e-5)


def test_scoring_many_models_in_one_process_warns_nothing():
    # Each Predictor traces its own model once; TensorFlow would count the traces of every model
    # against one function (same code) and warn about retracing after five: anomaly.tfkeras drops that.
    import logging

    from anomaly.tfkeras import tf

    messages = []
    handler = logging.Handler()
    handler.emit = lambda record: messages.append(record.getMessage())
    tf.get_logger().addHandler(handler)
    try:
        for _ in range(8):
            model = build_autoencoder(window=8, n_features=1, encoder_units=(2,), decoder_units=(2,), latent_dim=1)
            Predictor(model, 16)(np.zeros((5, 8, 1)))
    finally:
        tf.get_logger().removeHandler(handler)
    assert not [m for m in messages if "retracing" in m]


def test_bidirectional_layers_wrap_every_lstm():
    # Saving and loading in safe mode: test_saved_models_load_in_safe_mode_with_equal_outputs.
    built = build_model(kind="composite", bidirectional=True, pad_value=-1e4, **SMALL)
    wrapped = {
        layer.name: type(layer).__name__ for layer in built.infer.layers if "coder" in layer.name or "predictor" in layer.name
    }
    assert wrapped == {"encoder_0": "Bidirectional", "decoder_0": "Bidirectional", "predictor_0": "Bidirectional"}
    assert built.infer.get_layer("decoder_0").output.shape[-1] == 2 * SMALL["decoder_units"][0]  # both directions
    assert encoder_of(built.infer)(windows()).shape == (len(windows()), LATENT)
    with pytest.raises(ValueError, match="cannot be bidirectional"):
        build_model(kind="reconstruction", bidirectional=True, conditional=True, **SMALL)
