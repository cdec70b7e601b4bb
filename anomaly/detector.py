"""``LSTMAutoencoderDetector``: fit on normal data, score every timestamp, detect events.

scikit-learn conventions: the constructor stores hyperparameters unchanged; ``fit`` learns and
returns ``self``; learned state lives in attributes ending in ``_``. This is the one place that
joins the pure rooms (windows, thresholds, events) with the Keras model and the artifacts.
"""

from __future__ import annotations

import hashlib
import inspect
import logging
import math
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator
from sklearn.preprocessing import StandardScaler

from anomaly import events as events_mod
from anomaly import flagging, params, scoring
from anomaly import thresholds as thr
from anomaly.errors import AnomalyError, ConfigError, DataError, ModelError, NotFittedError, first_line
from anomaly.io import detect_interval
from anomaly.params import param
from anomaly.postprocess import LOCAL_RULES
from anomaly.windows import (
    OverlapMean,
    OverlapMedian,
    batched,
    future_starts,
    gather,
    gather_future,
    pad_sequences,
    reverse_steps,
    shift_right,
    span_starts,
    step_mask,
    window_starts,
)

if TYPE_CHECKING:
    from anomaly.engine import Engine

log = logging.getLogger("anomaly")

MIN_TRAIN_WINDOWS = 16
MIN_VAL_WINDOWS = 4
MIN_TRAIN_SEQUENCES = 8
MIN_VAL_SEQUENCES = 2
CONSTANT_POLICIES = ("error", "keep")
OVERLAPS = ("mean", "median")
MODEL_KINDS = ("reconstruction", "prediction", "composite")  # same as anomaly.model.MODEL_KINDS
# Fill value of padded steps in collections of sequences; the model's Masking layer skips steps
# whose every (scaled) feature equals it. A real step equal to it everywhere is refused.
MAX_TRAIN_WINDOWS = 2500  # stride="auto" grows the stride on long series so a fit sees about this many windows
MAX_NORMAL_ERRORS = 20000  # held-out row scores kept (the latest) to seed and cap causal flagging
TRAILING_RULE = flagging.TRAILING  # the causal rule; the others (postprocess.LOCAL_RULES) judge the whole batch
PAD_VALUE = -1.0e4
SCALE_BLOCK = 1 << 20  # rows scaled at a time (see _scale)


@dataclass(repr=False, eq=False)  # __init__ from the fields; scikit-learn's repr and identity
class LSTMAutoencoderDetector(BaseEstimator):
    """LSTM autoencoder anomaly detector for uni- and multivariate sensor series.

    ``fit(X)`` takes a frame of *normal* operation indexed by timestamp (see :func:`anomaly.load_series`):
    scaling statistics, the model and the thresholds all come from it. The last
    ``validation_fraction`` of its windows are held out (after a gap of one window, so no window
    overlaps both sides) for early stopping and for fitting the thresholds.

    ``model_kind`` chooses the decoder(s) (Srivastava et al. 2015), and with it how a timestamp's
    error is defined (mean squared error over sensors of every estimate made for it):

    - ``reconstruction`` (default): windows of ``window`` rows are rebuilt; a row's error is the
      mean over the windows covering it.
    - ``prediction``: each window predicts the ``horizon`` rows after it (so it needs
      ``window + horizon`` complete rows); a row's error is the mean over the (up to ``horizon``)
      windows before it that predicted it. The first ``window`` rows of a stretch are never
      predicted and get no score.
    - ``composite``: one encoder, both decoders, trained on ``mse(reconstruction) +
      prediction_weight * mse(prediction)``; a row's error is the mean over the reconstructions
      covering it *and* the predictions of it, all counted alike.

    ``reverse`` makes the reconstruction target the window reversed in time (not for
    ``prediction``); ``conditional`` feeds each decoder its previous output (teacher forcing in
    training, its own output at scoring) instead of the repeated latent vector alone.
    ``bidirectional`` reads every LSTM layer's input forwards and backwards (Keras ``Bidirectional``,
    as AER's encoder and decoder do); twice the recurrent work, not with ``conditional``.
    :meth:`fit_sequences` fits on a collection of separate recordings instead of one series.

    ``overlap`` says how the estimates of one row from overlapping windows are joined: ``mean``
    (default) averages their squared errors; ``median`` takes the median of the estimates
    (reconstructions and/or predictions of the row), then its squared error (Orion's way). A
    collection of separate sequences has one estimate per step, so there both agree.

    ``context_columns`` are inputs only: the encoder reads them (e.g. SMAP's command flags), but
    the decoders rebuild and predict only the other columns (``target_columns_``), and errors,
    scores and events concern those alone. Not with ``conditional`` nor :meth:`fit_sequences`.

    ``normalize_errors`` divides each sensor's error by its mean on the held-out normal windows
    (``error_ref_``) before the mean over sensors, so a sensor the model rebuilds poorly even in
    normal operation does not drown the others (one sensor: no effect on relative thresholds).

    Flagging (the defaults are the configuration ``anomaly bench`` measures): the score compared is
    the root of the squared error (``root_score``), EWMA-smoothed over ``smoothing`` rows. With
    ``local_rule="trailing"`` (default, :mod:`anomaly.flagging`) a row is flagged when it exceeds
    mean + ``local_k`` std of the ``local_trailing`` scores before it (only the unflagged ones with
    ``local_exclude``), seeded with the held-out normal scores, or ``local_cap`` times the largest
    held-out normal score; ``prune`` > 0 also requires (1 + prune) times the trailing maximum; the
    ``event_padding`` rows after a flagged row are flagged too. It depends only on the past, so a
    series scored at once, in chunks or incrementally gets the same flags. ``local_rule=None`` uses
    the fixed threshold learned at fit time (``threshold_rule``); ``ksigma``, ``dynamic`` and ``pot``
    judge each row against the whole scored batch (Orion's and telemanom's rules: results depend on
    how much is scored at once, so they cannot score incrementally) with telemanom's pruning and
    padding on both sides.
    """

    # Every hyperparameter, declared once (anomaly.params): the constructor's argument and default,
    # its rule, its `anomaly train` option and its dashboard field. Rules joining several are in
    # check_params. The defaults are the configuration `anomaly bench` measures.
    # -- model
    window: int = param(32, "int", "window length in points", low=2, flag="--window")
    stride: int | str = param(
        "auto",
        "stride",
        "step between windows, or auto: grows on long normal periods so a fit sees about 2,500 windows",
        flag="--stride",
    )
    encoder_units: tuple[int, ...] = param(
        (32,), "units", "encoder LSTM units per layer, e.g. 64 or 64,32", flag="--units", label="LSTM units"
    )
    decoder_units: tuple[int, ...] = param(
        (32,), "units", "decoder LSTM units per layer", flag="--decoder-units", default_text="the encoder's, reversed"
    )
    latent_dim: int = param(16, "int", "size of the latent vector", low=1, flag="--latent")
    activation: str = param(
        "tanh",
        "choice",
        "LSTM activation",
        flag="--activation",
        choices=("tanh", "relu", "sigmoid", "elu", "selu", "softsign", "linear"),
    )
    dropout: float = param(0.0, "float", "dropout on LSTM inputs", low=0, high=1, open_high=True, flag="--dropout")
    learning_rate: float = param(5e-3, "float", "Adam learning rate", low=0, open_low=True, flag="--learning-rate")
    batch_size: int = param(128, "int", "training batch size", low=1, flag="--batch-size")
    epochs: int = param(25, "int", "maximum epochs", low=1, flag="--epochs")
    patience: int = param(4, "int", "early-stopping patience in epochs", low=0, flag="--patience")
    validation_fraction: float = param(
        0.2, "float", "last fraction of normal windows held out", low=0, high=1, open_high=True, flag="--validation-fraction"
    )
    seed: int = param(0, "int", "random seed: same seed, same model", flag="--seed")
    on_constant: str = param(
        "keep",
        "choice",
        "a sensor constant in the normal period: keep it (a warning; any change in it then scores as anomalous) or refuse it",
        choices=CONSTANT_POLICIES,
        flag="--on-constant",
    )
    verbose: int = param(1, "int", "0: silent fit; 1: a progress bar per epoch", low=0, group="other", form=False)
    # -- model kind (Srivastava et al. 2015)
    model_kind: str = param(
        "reconstruction",
        "choice",
        "decoder(s): rebuild the window, predict the steps after it, or both",
        choices=MODEL_KINDS,
        flag="--model-kind",
        group="kind",
    )
    horizon: int = param(
        1,
        "int",
        "steps predicted after each window, for prediction and composite",
        low=1,
        flag="--horizon",
        metavar="N",
        group="kind",
    )
    prediction_weight: float = param(
        1.0,
        "float",
        "composite loss = mse(reconstruction) + W * mse(prediction)",
        low=0,
        open_low=True,
        flag="--prediction-weight",
        metavar="W",
        group="kind",
    )
    reverse: bool = param(False, "bool", "reconstruct the window in reverse order", flag="--reverse", group="kind")
    conditional: bool = param(
        False, "bool", "feed each decoder its previous output (teacher forcing in training)", flag="--conditional", group="kind"
    )
    bidirectional: bool = param(
        False,
        "bool",
        "every LSTM layer reads its input forwards and backwards (not with --conditional)",
        flag="--bidirectional",
        group="kind",
    )
    # -- flagging (anomaly.flagging; the batch rules: anomaly.postprocess)
    local_rule: str | None = param(
        "trailing",
        "choice",
        "trailing: each row against the scores before it (causal, "
        "scores incrementally); none: the fixed threshold; ksigma, dynamic, pot: against the "
        "whole scored batch",
        choices=(TRAILING_RULE, *LOCAL_RULES),
        none=True,
        flag="--local-rule",
        group="flagging",
    )
    local_k: float = param(
        6.0, "float", "k of the trailing (or ksigma) mean + k*std", low=0, open_low=True, flag="--local-k", group="flagging"
    )
    local_trailing: int = param(
        3000, "int", "scores before a row that its threshold comes from", low=2, flag="--trailing", metavar="N", group="flagging"
    )
    local_exclude: bool = param(
        True,
        "bool",
        "keep flagged rows out of the trailing scores, so a long anomaly stays flagged",
        flag="--exclude-flagged",
        group="flagging",
    )
    local_cap: float = param(
        3.0,
        "float",
        "also flag rows over this many times the largest held-out normal score (0 = off)",
        low=0,
        flag="--local-cap",
        group="flagging",
    )
    prune: float = param(
        0.0,
        "float",
        "trailing: also require (1 + P) times the trailing maximum; batch rules: telemanom's pruning",
        low=0,
        high=1,
        open_high=True,
        flag="--prune",
        group="flagging",
    )
    event_padding: int = param(
        100,
        "int",
        "rows flagged after each flagged row (batch rules: on each side)",
        low=0,
        flag="--event-padding",
        metavar="N",
        group="flagging",
    )
    smoothing: int = param(
        20, "int", "EWMA span of the score in points, 0 = off", low=0, flag="--smoothing", metavar="SPAN", group="flagging"
    )
    root_score: bool = param(
        True,
        "bool",
        "compare the root of the squared error (RMS), whose tails are lighter",
        flag="--root-score",
        group="flagging",
    )
    local_window: float = param(
        0.33,
        "float",
        "batch rules: window of the sliding thirds, as a fraction of the scored batch",
        low=0,
        high=1,
        open_low=True,
        group="flagging",
    )
    # -- fixed thresholds (in force with local_rule=None)
    threshold_rule: str = param(
        "quantile",
        "choice",
        "rule in force: quantile of held-out normal scores, mean + k*std, or margin * max",
        choices=thr.RULES,
        flag="--threshold-rule",
        group="threshold",
    )
    quantile: float = param(
        0.995,
        "float",
        "quantile of held-out normal scores",
        low=0,
        high=1,
        open_low=True,
        open_high=True,
        flag="--quantile",
        group="threshold",
    )
    k_sigma: float = param(4.0, "float", "k of the mean + k*std rule", low=0, open_low=True, flag="--k-sigma", group="threshold")
    margin: float = param(1.0, "float", "multiplier of the max rule", low=0, open_low=True, flag="--margin", group="threshold")
    # -- events
    min_event_length: int = param(
        1, "int", "drop events shorter than N points", low=1, flag="--min-length", metavar="N", group="events"
    )
    merge_gap: int = param(
        0, "int", "merge events at most N points apart", low=0, flag="--merge-gap", metavar="N", group="events"
    )
    # -- scoring details
    overlap: str = param(
        "mean",
        "choice",
        "join overlapping windows' estimates of a row: mean of their errors, or the error of their median",
        choices=OVERLAPS,
        flag="--overlap",
        group="other",
    )
    normalize_errors: bool = param(
        False,
        "bool",
        "divide each sensor's error by its normal level before the mean over sensors",
        flag="--normalize-errors",
        group="other",
    )
    context_columns: tuple[str, ...] = param(
        (), "names", "input-only columns (read by the encoder, never rebuilt nor scored)", group="other", form=False
    )

    # -- parameters -------------------------------------------------------------------------
    @classmethod
    def param_names(cls) -> list[str]:
        """The constructor's hyperparameter names, in its order."""
        return [p for p in inspect.signature(cls.__init__).parameters if p != "self"]

    def get_params(self, deep: bool = True) -> dict:
        """Hyperparameters as given to the constructor, in its order (JSON-friendly: tuples become lists on save).

        ``deep`` is scikit-learn's flag to include nested estimators' parameters; no parameter here
        is an estimator, so both give the same dict.
        """
        return {name: getattr(self, name) for name in self.param_names()}

    def set_params(self, **params) -> LSTMAutoencoderDetector:
        """Change hyperparameters; an unknown name is a :class:`ConfigError` (scikit-learn raises ValueError)."""
        for name, value in params.items():
            if name not in self.param_names():
                raise ConfigError(f"unknown parameter '{name}'")
            setattr(self, name, value)
        return self

    def check_params(self) -> None:
        """Raise :class:`ConfigError` naming the first invalid hyperparameter (``fit`` and loading call it):
        each against its own rule (:func:`anomaly.params.check`), then the rules that join several."""
        params.check(self)
        stride = self.stride
        if stride != "auto" and stride > self.window:
            raise ConfigError(f"stride ({stride}) must not exceed window ({self.window}), or rows go unscored")
        if self.bidirectional and self.conditional:
            raise ConfigError("bidirectional does not work with a conditional decoder (it runs forwards one step at a time)")
        if self.reverse and self.model_kind == "prediction":
            raise ConfigError("reverse applies to the reconstruction decoder, which model_kind 'prediction' does not have")
        if self.model_kind == "prediction" and stride != "auto" and stride > self.horizon:
            raise ConfigError(f"stride ({stride}) must not exceed horizon ({self.horizon}) for prediction, or rows go unscored")
        if self.context_columns and self.conditional:
            raise ConfigError("context_columns do not work with a conditional decoder (it is fed its own targets)")

    @property
    def target_columns_(self) -> list[str]:
        """The columns the model rebuilds and scores: every column but the ``context_columns``."""
        context = set(self.context_columns)
        return [c for c in self.columns_ if c not in context]

    def _target_index(self) -> np.ndarray | slice:
        """Positions of the target columns among ``columns_`` (a plain slice when all are targets)."""
        if not self.context_columns:
            return slice(None)
        context = set(self.context_columns)
        return np.array([i for i, c in enumerate(self.columns_) if c not in context], dtype=np.int64)

    def _target_values(self, values: np.ndarray) -> np.ndarray:
        """The scaled target columns of ``values`` (``values`` itself when every column is a target)."""
        return values if not self.context_columns else np.ascontiguousarray(values[:, self._target_index()])

    def _horizon(self) -> int:
        """Rows predicted after each window (0 when there is no prediction decoder)."""
        return 0 if self.model_kind == "reconstruction" else int(self.horizon)

    def _outputs(self) -> list[str]:
        """The decoders, in the order of the model's outputs."""
        return {
            "reconstruction": ["reconstruction"],
            "prediction": ["prediction"],
            "composite": ["reconstruction", "prediction"],
        }[self.model_kind]

    def output_shapes(self, n_features: int) -> list[tuple]:
        """Shape of each output of the saved model, in order (checked when a model directory is loaded)."""
        steps = {"reconstruction": self.window, "prediction": int(self.horizon)}
        n_targets = n_features - len(self.context_columns)
        return [(None, steps[name], n_targets) for name in self._outputs()]

    def _build(self, pad_value: float | None = None):
        from anomaly.model import build_model

        return build_model(
            kind=self.model_kind,
            window=self.window,
            n_features=self.n_features_in_,
            n_outputs=self.n_features_in_ - len(self.context_columns),
            encoder_units=tuple(self.encoder_units),
            decoder_units=tuple(self.decoder_units),
            latent_dim=self.latent_dim,
            horizon=int(self.horizon),
            activation=self.activation,
            dropout=self.dropout,
            learning_rate=self.learning_rate,
            conditional=bool(self.conditional),
            prediction_weight=float(self.prediction_weight),
            pad_value=pad_value,
            bidirectional=bool(self.bidirectional),
        )

    def _train(self, built, n_train: int, n_val: int, make_train, make_val, on_epoch=None) -> None:
        """Fit ``built.train`` on batches from ``make_*(indices)``; keep ``built.infer`` as ``model_``."""
        from anomaly.model import Batches, EpochHook, EpochProgress
        from anomaly.tfkeras import keras

        self.model_ = built.infer
        self._predictor_cache = self._encoder_cache = None
        callbacks = []
        if n_val:
            callbacks.append(keras.callbacks.EarlyStopping(monitor="val_loss", patience=self.patience, restore_best_weights=True))
        if self.verbose:
            callbacks.append(EpochProgress(self.epochs))
        if on_epoch is not None:
            callbacks.append(EpochHook(on_epoch))
        train_data = Batches(n_train, make_train, self.batch_size, shuffle=True, seed=self.seed)
        val_data = Batches(n_val, make_val, self.batch_size, shuffle=False, seed=self.seed) if n_val else None
        history = built.train.fit(train_data, validation_data=val_data, epochs=self.epochs, callbacks=callbacks, verbose=0)
        self.history_ = {k: [float(v) for v in vals] for k, vals in history.history.items()}

    def _targets_to_batch(self, x: np.ndarray, targets: list[np.ndarray]):
        """Model inputs and targets: the window, plus teacher-forcing inputs for a conditional decoder."""
        # Tuples, not lists: a PyDataset's nested structure must be tuples for tf.data.
        inputs = (x, *[shift_right(t) for t in targets]) if self.conditional else x
        return inputs, (targets[0] if len(targets) == 1 else tuple(targets))

    def _window_batch(self, values: np.ndarray, targets_of: np.ndarray, starts: np.ndarray):
        """One training batch of windows at ``starts``: ``(inputs, targets)`` (targets from ``targets_of``)."""
        x = gather(values, starts, self.window)
        xt = x if targets_of is values else gather(targets_of, starts, self.window)
        targets = [
            (reverse_steps(xt) if self.reverse else xt)
            if name == "reconstruction"
            else gather_future(targets_of, starts, self.window, self.horizon)
            for name in self._outputs()
        ]
        return self._targets_to_batch(x, targets)

    # -- fitting ----------------------------------------------------------------------------
    def fit(self, X: pd.DataFrame, y=None, *, on_epoch=None) -> LSTMAutoencoderDetector:
        """Learn scaling, the autoencoder and thresholds from ``X``, a frame of normal operation.

        ``on_epoch(epoch, logs)``, if given, is called after every epoch with the 0-based epoch and a
        dict of plain floats (``loss``, ``val_loss``): a progress hook for a UI, free of Keras types.
        """
        from anomaly.tfkeras import keras

        self.check_params()
        X = _check_frame(X)
        self.columns_ = list(map(str, X.columns))
        self.n_features_in_ = len(self.columns_)
        unknown = [c for c in self.context_columns if c not in self.columns_]
        if unknown:
            raise DataError(
                f"context column(s) {', '.join(map(repr, unknown))} not in the data (columns: {', '.join(self.columns_)})"
            )
        if not self.target_columns_:
            raise DataError("every column is a context column: at least one must be a sensor to rebuild")
        self.interval_ = pd.Timedelta(X.index.freq) if X.index.freq is not None else detect_interval(X.index)
        self.timezone_ = str(X.index.tz) if X.index.tz is not None else None
        self._fit_scaler(X)
        values = self._scale(X)
        targets_of = self._target_values(values)
        self.stride_ = self._resolve_stride(len(X))
        starts = span_starts(np.isfinite(values).all(axis=1), self.window, self._horizon(), self.stride_)
        train, val = self._split(starts, len(X))

        keras.utils.set_random_seed(self.seed)
        self._train(
            self._build(),
            len(train),
            len(val),
            lambda idx: self._window_batch(values, targets_of, train[idx]),
            lambda idx: self._window_batch(values, targets_of, val[idx]),
            on_epoch=on_epoch,
        )

        # Thresholds come from windows the model did not train on (all of them if none were held out).
        held_out = val if len(val) else train
        row_errors = self.row_errors(values, held_out)
        covered = np.isfinite(row_errors).all(axis=1)
        self.error_ref_ = np.maximum(np.nanmean(row_errors[covered], axis=0), 1e-12)
        normal_scores = self.combine(row_errors, X.index)[covered]
        self.normal_errors_ = self.sensor_mean(row_errors)[covered][-MAX_NORMAL_ERRORS:]  # time order: seeds flagging
        self.thresholds_ = thr.fit_thresholds(normal_scores, self.quantile, self.k_sigma, self.threshold_rule, self.margin)
        self.normal_scores_ = np.sort(normal_scores)
        self.fingerprint_ = fingerprint(X)
        return self

    def _resolve_stride(self, n_rows: int) -> int:
        """The stride in force: ``stride``, or with ``"auto"`` the smallest that gives a fit on ``n_rows``
        about :data:`MAX_TRAIN_WINDOWS` windows (at most a quarter window; a prediction's horizon)."""
        if self.stride != "auto":
            return int(self.stride)
        stride = min(max(1, math.ceil(n_rows / MAX_TRAIN_WINDOWS)), max(1, self.window // 4))
        return min(stride, self.horizon) if self.model_kind == "prediction" else stride

    def _fit_scaler(self, X: pd.DataFrame) -> None:
        finite = X[np.isfinite(X.to_numpy()).all(axis=1)]
        if len(finite) == 0:
            raise DataError("normal period has no complete row")
        self.scaler_ = StandardScaler().fit(finite.to_numpy())
        if not (np.isfinite(self.scaler_.mean_).all() and np.isfinite(self.scaler_.scale_).all()):
            col = self.columns_[int(np.flatnonzero(~np.isfinite(self.scaler_.mean_ + self.scaler_.scale_))[0])]
            raise DataError(f"column '{col}': values too large to scale (overflow)")
        constant = self.scaler_.var_ == 0
        names = ", ".join(repr(self.columns_[i]) for i in np.flatnonzero(constant))
        if constant.any() and self.on_constant == "error":
            raise DataError(f"sensor {names} is constant in the normal period; drop it with --columns or use --on-constant keep")
        if constant.any():
            log.warning(
                "sensor %s is constant in the normal period: kept unscaled, so any change in it scores as "
                "anomalous (drop it with --columns, or refuse it with --on-constant error)",
                names,
            )

    def _split(self, starts: np.ndarray, n_rows: int) -> tuple[np.ndarray, np.ndarray]:
        """Training and held-out window starts: the last windows are held out, one window apart."""
        n_val = int(round(len(starts) * self.validation_fraction))
        if n_val:
            val = starts[len(starts) - n_val :]
            train = starts[starts + self.window + self._horizon() <= val[0]]
        else:
            val, train = starts[:0], starts
        if len(train) < MIN_TRAIN_WINDOWS or (self.validation_fraction > 0 and len(val) < MIN_VAL_WINDOWS):
            raise DataError(
                f"too few normal windows to fit: {len(train)} for training and {len(val)} held out from {n_rows} rows "
                f"(need at least {MIN_TRAIN_WINDOWS} and {MIN_VAL_WINDOWS}); use a longer normal period or a smaller window"
            )
        return train, val

    # -- scoring ----------------------------------------------------------------------------
    def _check_fitted(self) -> None:
        if not hasattr(self, "model_"):
            raise NotFittedError("this detector is not fitted yet: call fit() or load() first")

    def _scale(self, X: pd.DataFrame) -> np.ndarray:
        """Scaled float32 values; a value that overflows float32 once scaled is a :class:`DataError`.

        Scaled in blocks of rows, so a long series needs no float64 copy of its own length.
        """
        raw = X.to_numpy(dtype=np.float64)
        scaled = np.empty(raw.shape, dtype=np.float32)
        for lo in range(0, len(raw), SCALE_BLOCK):
            block = raw[lo : lo + SCALE_BLOCK]
            with np.errstate(over="ignore", invalid="ignore"):
                scaled[lo : lo + SCALE_BLOCK] = self.scaler_.transform(block)
            overflow = np.isfinite(block) & ~np.isfinite(scaled[lo : lo + SCALE_BLOCK])
            if overflow.any():
                row, col = (int(a[0]) for a in np.nonzero(overflow))
                raise DataError(
                    f"column '{self.columns_[col]}' at {X.index[lo + row]}: value {X.iat[lo + row, col]:g} is too large to score"
                )
        return scaled

    def _onnx_loaded(self) -> bool:
        """Whether ``model_`` is an ONNX Runtime session (``load(engine="onnx")``), not a Keras model."""
        from anomaly.engine import OnnxModel

        return isinstance(self.model_, OnnxModel)

    def _predictor(self) -> Engine:
        if self._onnx_loaded():  # the session is the predictor
            return self.model_
        from anomaly.model import Predictor  # imports TensorFlow: only past the ONNX case

        cache = getattr(self, "_predictor_cache", None)
        if cache is None or cache.model is not self.model_:  # a new model_ (fit again, load) needs a new one
            self._predictor_cache = Predictor(self.model_)
        return self._predictor_cache

    # -- the scoring seam: the stages of score(), shared with incremental scoring and the bench --
    # prepare (checked, scaled frame and window starts) -> forward (per-row, per-sensor errors) ->
    # sensor_mean / combine (one raw or smoothed score per row) -> flagging (anomaly.flagging).
    def forward(self, values: np.ndarray, starts: np.ndarray, reconstruct: bool = False):
        """Per-row, per-target squared error and mean estimate over every estimate of the row.

        Reconstructions count for the rows of their window, predictions for the rows after it.
        ``overlap="mean"``: the mean of the estimates' squared errors; ``"median"``: the squared
        error of the median estimate (which is then the estimate returned).
        """
        targets_of = self._target_values(values)
        n_targets = targets_of.shape[1]
        median = self.overlap == "median"
        errors = None if median else OverlapMean(len(values), n_targets)
        recon = (
            OverlapMedian(len(values), n_targets) if median else (OverlapMean(len(values), n_targets) if reconstruct else None)
        )
        predict = self._predictor().plan(len(starts))  # XLA only where it pays (model.XLA_MIN_WINDOWS)
        for batch in batched(starts, predict.batch_size):  # model.SCORE_BATCH, chosen by bench/perf.py
            x = gather(values, batch, self.window)
            outs = predict(x)
            for name, y in zip(self._outputs(), outs if isinstance(outs, list) else [outs]):
                if name == "reconstruction":
                    at = batch
                    if self.reverse:
                        y = reverse_steps(y)
                    target = None if median else (x if targets_of is values else gather(targets_of, batch, self.window))
                else:
                    at = future_starts(batch, self.window)
                    target = None if median else gather_future(targets_of, batch, self.window, self.horizon)
                if errors is not None:
                    errors.add(at, (y - target) ** 2)
                if recon is not None:
                    recon.add(at, y)
        if median:
            estimate = recon.median()
            return (estimate - targets_of) ** 2, (estimate if reconstruct else None)
        return errors.mean(consume=True), (recon.mean(consume=True) if recon is not None else None)

    def row_errors(self, values: np.ndarray, starts: np.ndarray) -> np.ndarray:
        """Per-row, per-target squared errors of the windows at ``starts`` (:meth:`forward` without estimates)."""
        return self.forward(values, starts)[0]

    def sensor_mean(self, row_errors: np.ndarray) -> np.ndarray:
        """Mean error over sensors per row; each sensor's first divided by ``error_ref_`` with ``normalize_errors``."""
        with np.errstate(invalid="ignore"):
            return (row_errors / self.error_ref_ if self.normalize_errors else row_errors).mean(axis=1)

    def combine(self, row_errors: np.ndarray, index: pd.DatetimeIndex) -> np.ndarray:
        """One score per row: mean over sensors, optionally EWMA-smoothed over ``smoothing`` rows."""
        score = self.sensor_mean(row_errors)
        if self.smoothing > 1:
            score = pd.Series(score).ewm(span=self.smoothing, ignore_na=True).mean().to_numpy(copy=True)
            score[~np.isfinite(row_errors).all(axis=1)] = np.nan
        return score

    def prepare(self, X: pd.DataFrame, span: int | None = None) -> tuple[pd.DataFrame, np.ndarray, np.ndarray]:
        """Checked data, its scaled values and the starts of its complete spans (default: window + horizon)."""
        self._check_fitted()
        self._check_series_model()
        X = _check_frame(X)
        missing = [c for c in self.columns_ if c not in X.columns]
        if missing:
            raise DataError(
                f"data lacks the model's column(s) {', '.join(map(repr, missing))} "
                f"(model columns: {', '.join(self.columns_)}; data columns: {', '.join(map(str, X.columns))})"
            )
        X = X[self.columns_]
        values = self._scale(X)
        span = self.window + self._horizon() if span is None else span
        starts = window_starts(np.isfinite(values).all(axis=1), span, self.stride_)
        if len(starts) == 0:
            need = f"one window ({self.window} rows)" if span == self.window else f"one window plus the horizon ({span} rows)"
            raise DataError(
                f"no complete window to score: the series has {len(X)} rows and no stretch without gaps of at least {need}"
            )
        return X, values, starts

    def threshold_for(self, threshold: float | None = None, quantile: float | None = None) -> float:
        """The threshold in force: an explicit value, a quantile of the normal scores, or the fitted rule."""
        self._check_fitted()
        if threshold is not None:
            if not np.isfinite(threshold) or threshold < 0:
                raise ConfigError(f"threshold must be a finite number >= 0, not {threshold}")
            return float(threshold)
        if quantile is not None:
            return thr.quantile_threshold(self.normal_scores_, quantile)
        return float(self.thresholds_["values"][self.thresholds_["rule"]])

    def score(
        self, X: pd.DataFrame, *, threshold: float | None = None, quantile: float | None = None, reconstruct: bool = False
    ) -> pd.DataFrame:
        """Per-timestamp ``score, threshold, is_anomaly`` and ``error_<sensor>`` columns.

        Rows inside gaps (covered by no window) have NaN scores and are never anomalous. With
        ``reconstruct=True`` the mean reconstruction of each sensor (original units) is added as
        ``recon_<sensor>``: for ``prediction`` the mean prediction, for ``composite`` the mean of
        every reconstruction and prediction of the row. For ``prediction``, the first ``window``
        rows of each stretch are never predicted and score NaN too.
        """
        X, values, starts = self.prepare(X)
        row_errors, recon = self.forward(values, starts, reconstruct)
        return self._with_sensor_columns(self._flag_rows(row_errors, X.index, threshold, quantile), row_errors, recon)

    def _flag_rows(
        self,
        row_errors: np.ndarray,
        index: pd.Index,
        threshold: float | None = None,
        quantile: float | None = None,
        fixed: float | None = None,
    ) -> pd.DataFrame:
        """``score, threshold, is_anomaly`` of rows from their per-sensor squared errors.

        The rule in force, unless ``threshold``/``quantile`` asks for that one fixed threshold on the
        plain score. ``fixed`` (``local_rule=None``): the model's own rule with this threshold value
        instead of the fitted one (what the dashboard's Threshold page tries).
        """
        if self.local_rule == TRAILING_RULE and threshold is None and quantile is None:
            # anomaly.flagging owns the rest: root, EWMA, trailing threshold, cap, padding forward.
            rule = self.flag_rule()
            flagged = flagging.flag(self.sensor_mean(row_errors), rule, self.flag_seed(rule))
            return pd.DataFrame(
                {"score": flagged.score, "threshold": flagged.threshold, "is_anomaly": flagged.flags}, index=index
            )
        score = self.combine(row_errors, index)
        limit = self.threshold_for(threshold if fixed is None else fixed, quantile)
        out = pd.DataFrame({"score": score, "threshold": limit}, index=index)
        with np.errstate(invalid="ignore"):
            out["is_anomaly"] = score > limit  # NaN (a gap) is never above it
        if self.has_postprocessing() and threshold is None and quantile is None:
            # anomaly.postprocess owns the rest: root, EWMA, local threshold, pruning, padding, merging.
            from anomaly.postprocess import flag_scores, normal_cap

            raw = self.sensor_mean(row_errors)
            floor = None if self.local_rule is not None else (np.sqrt(limit) if self.root_score else limit)
            out["score"], out["threshold"], out["is_anomaly"] = flag_scores(
                raw,
                rule=self.local_rule,
                smoothing=self.smoothing,
                window_frac=self.local_window,
                k=self.local_k,
                floor=floor,
                cap=normal_cap(self.normal_scores_, self.local_cap, self.root_score),
                prune=self.prune,
                pad=self.event_padding,
                merge_gap=self.merge_gap,
                min_length=self.min_event_length,
                root=self.root_score,
            )
        return out

    def _with_sensor_columns(self, out: pd.DataFrame, row_errors: np.ndarray, recon: np.ndarray | None) -> pd.DataFrame:
        """``out`` with the error columns (and the reconstructions in original units) of :mod:`anomaly.scoring`."""
        original = None if recon is None else self._unscale_targets(recon)
        return scoring.add_sensor_columns(out, self.target_columns_, row_errors, original)

    def flag_rule(self) -> flagging.TrailingRule:
        """The causal flagging rule in force (``local_rule="trailing"``), its cap set from the held-out normal scores."""
        self._check_fitted()
        return flagging.make_rule(
            self.normal_errors_,
            k=self.local_k,
            trailing=self.local_trailing,
            cap_factor=self.local_cap,
            prune=self.prune,
            pad=self.event_padding,
            smoothing=self.smoothing,
            root=bool(self.root_score),
            exclude=bool(self.local_exclude),
        )

    def describe_flagging(self) -> str:
        """How this fitted detector flags rows, in one line (for the CLI and the dashboard)."""
        if self.local_rule == TRAILING_RULE:
            cap = self.flag_rule().cap
            return (
                f"flags rows over mean + {self.local_k:g} std of the last {self.local_trailing} scores"
                + (f" or over {cap:.6g}" if cap is not None else "")
                + (f", and the {self.event_padding} rows after each" if self.event_padding else "")
            )
        t = self.thresholds_
        if self.local_rule is None:
            return f"threshold {t['rule']} = {t['values'][t['rule']]:.6g}"
        return f"local rule {self.local_rule}, relative to each scored batch"

    def reflag(self, scores: pd.DataFrame, threshold: float | None = None) -> pd.DataFrame:
        """``scores`` (from :meth:`score`) with ``score, threshold, is_anomaly`` recomputed from their
        ``error_<sensor>`` columns under this detector's settings, without running the model: tune
        ``local_k``, ``local_trailing``, ``local_cap``... with :meth:`set_params` on a copy. For a
        fixed-threshold model (``local_rule=None``), ``threshold`` replaces the fitted value in its rule."""
        self._check_fitted()
        if threshold is not None and self.local_rule is not None:
            raise ConfigError(
                f"a threshold replaces the fitted one of a fixed-threshold model only, not of local_rule {self.local_rule!r}"
            )
        errors = scoring.errors_of(scores, self.target_columns_)
        flagged = self._flag_rows(errors, scores.index, fixed=threshold)
        return scores.assign(**{c: flagged[c] for c in ("score", "threshold", "is_anomaly")})

    def flag_seed(self, rule: flagging.TrailingRule | None = None) -> flagging.FlagState:
        """The flagging state a scored series starts from: the latest held-out normal scores
        (``rule``: :meth:`flag_rule`, when the caller has it already)."""
        return flagging.seed(self.normal_errors_, self.flag_rule() if rule is None else rule)

    def _unscale_targets(self, scaled: np.ndarray) -> np.ndarray:
        """Scaled estimates of the target columns back in original units (NaN stays NaN)."""
        tgt = self._target_index()
        return scaled * self.scaler_.scale_[tgt] + self.scaler_.mean_[tgt]

    def events(self, scores: pd.DataFrame, threshold: float | None = None) -> pd.DataFrame:
        """Events from a frame returned by :meth:`score`, optionally at another threshold."""
        self._check_fitted()
        contributions = scoring.errors_of(scores, self.target_columns_) / self.error_ref_
        if self.has_postprocessing() and threshold is None:  # flags already final (see score)
            from anomaly.postprocess import events_from_flags

            # the causal rule leaves merging and minimum length to the events; the batch rules applied them
            causal = self.local_rule == TRAILING_RULE
            return events_from_flags(
                scores.index,
                scores["score"].to_numpy(),
                scores["threshold"].to_numpy(),
                scores["is_anomaly"].to_numpy(),
                contributions,
                self.target_columns_,
                merge_gap=self.merge_gap if causal else 0,
                min_length=self.min_event_length if causal else 1,
            )
        limit = float(scores["threshold"].iloc[0]) if threshold is None else self.threshold_for(threshold)
        return events_mod.find_events(
            scores.index,
            scores["score"].to_numpy(),
            limit,
            contributions,
            self.target_columns_,
            min_length=self.min_event_length,
            merge_gap=self.merge_gap,
        )

    def has_postprocessing(self) -> bool:
        """Whether flags come from :mod:`anomaly.postprocess` (local rule, pruning or padding)."""
        return self.local_rule is not None or self.prune > 0 or self.event_padding > 0 or bool(self.root_score)

    def detect(self, X: pd.DataFrame, *, threshold: float | None = None, quantile: float | None = None) -> pd.DataFrame:
        """Anomaly events (``start, end, peak_score, severity, sensors``) in ``X``."""
        return self.events(self.score(X, threshold=threshold, quantile=quantile))

    def embed(self, X: pd.DataFrame) -> pd.DataFrame:
        """The encoder's fixed-length vector of every window, with the window's start and end time.

        Every kind has the same encoder; windows need ``window`` complete rows (no horizon).
        """

        X, values, starts = self.prepare(X, span=self.window)
        vectors = np.concatenate([self._encoder()(gather(values, b, self.window)) for b in batched(starts, 1024)])
        out = pd.DataFrame(vectors, columns=[f"z{i}" for i in range(vectors.shape[1])])
        out.insert(0, "end", X.index[starts + self.window - 1])
        out.insert(0, "start", X.index[starts])
        return out

    def _encoder(self):
        self._check_keras("embedding")
        from anomaly.model import Predictor, encoder_of

        if getattr(self, "_encoder_cache", None) is None:
            self._encoder_cache = Predictor(encoder_of(self.model_))
        return self._encoder_cache

    # -- collections of separate sequences --------------------------------------------------
    def _check_keras(self, what: str) -> None:
        if self._onnx_loaded():
            raise ConfigError(f"{what} needs the Keras model: load this detector with engine='tensorflow', not 'onnx'")

    def _is_sequence_model(self) -> bool:
        """Whether the model was fitted by :meth:`fit_sequences` (its input has a Masking layer)."""
        if self._onnx_loaded():  # only series models are exported (see save)
            return False
        from anomaly.model import MASK_LAYER

        return any(layer.name == MASK_LAYER for layer in self.model_.layers)

    def _pad_value(self) -> float:
        """The padding value of this model: its Masking layer's (``PAD_VALUE`` when it was fitted)."""
        from anomaly.model import MASK_LAYER

        return float(self.model_.get_layer(MASK_LAYER).mask_value)

    def _check_series_model(self) -> None:
        if self._is_sequence_model():
            raise ConfigError(
                "this model was fitted on separate sequences (fit_sequences): use score_sequences / embed_sequences"
            )

    def _check_sequence_model(self) -> None:
        self._check_fitted()
        if not self._is_sequence_model():
            raise ConfigError("this model was fitted on one series (fit): use score / embed, not the *_sequences methods")

    def _sequence_values(self, sequences, fitting: bool) -> tuple[list[np.ndarray], list[pd.Index]]:
        """Scaled ``(steps, n_features)`` arrays of each sequence, and each one's index."""
        frames = _check_sequences(sequences, None if fitting else self.columns_)
        h, longest = self._horizon(), self.window + self._horizon()
        for i, f in enumerate(frames):
            if not h + 2 <= len(f) <= longest:
                raise DataError(
                    f"sequence {i}: {len(f)} steps; this model takes {h + 2} to {longest} "
                    + ("(window + horizon)" if h else "(window)")
                    + ": split it or raise window"
                )
        if fitting:
            self.columns_ = list(map(str, frames[0].columns))
            self.n_features_in_ = len(self.columns_)
            self._fit_scaler(pd.concat(frames, ignore_index=True))
        scaled = [self._scale(f) for f in frames]
        pad = PAD_VALUE if fitting else self._pad_value()
        for i, v in enumerate(scaled):
            hit = np.flatnonzero((v == pad).all(axis=1))
            if len(hit):
                raise DataError(f"sequence {i} row {hit[0]}: every scaled value equals the padding value {pad:g}")
        return scaled, [f.index for f in frames]

    def _pack(self, scaled: list[np.ndarray], pad: float):
        """Padded inputs ``(n, window, f)``, input lengths, and the last ``horizon`` steps as targets."""
        h = self._horizon()
        inputs, lengths = pad_sequences([v[: len(v) - h] for v in scaled], self.window, pad)
        futures = np.stack([v[len(v) - h :] for v in scaled]) if h else None
        return inputs, lengths, futures

    def _sequence_batch(self, inputs: np.ndarray, lengths: np.ndarray, futures, idx: np.ndarray):
        """One training batch of sequences: ``(inputs, targets, per-step weights)``; padding weighs 0."""
        x, n = inputs[idx], lengths[idx]
        targets, weights = [], []
        for name in self._outputs():
            if name == "reconstruction":
                targets.append(reverse_steps(x, n) if self.reverse else x)
                weights.append(step_mask(n, self.window))
            else:
                targets.append(futures[idx])
                weights.append(np.ones(futures[idx].shape[:2], dtype=np.float32))
        model_inputs, y = self._targets_to_batch(x, targets)
        return model_inputs, y, (weights[0] if len(weights) == 1 else tuple(weights))

    def _sequence_forward(self, inputs, lengths, futures, reconstruct: bool = False):
        """Per-step errors (and estimates) of every sequence, as one array of all their rows in order."""
        h = self._horizon()
        firsts = np.concatenate([[0], np.cumsum(lengths + h)[:-1]]).astype(np.int64)
        n_rows, n_features = int((lengths + h).sum()), inputs.shape[2]
        errors = OverlapMean(n_rows, n_features)
        recon = OverlapMean(n_rows, n_features) if reconstruct else None
        predict = self._predictor()
        for batch in batched(np.arange(len(inputs)), max(self.batch_size, 1024)):
            x, n = inputs[batch], lengths[batch]
            outs = predict(x)
            for name, y in zip(self._outputs(), outs if isinstance(outs, list) else [outs]):
                if name == "reconstruction":
                    y = reverse_steps(y, n) if self.reverse else y
                    err, at, keep = (y - x) ** 2, firsts[batch], n
                else:
                    err, at, keep = (y - futures[batch]) ** 2, firsts[batch] + n, None
                errors.add(at, err, keep)
                if recon is not None:
                    recon.add(at, y, keep)
        return firsts, errors.mean(), (recon.mean() if recon is not None else None)

    def fit_sequences(self, sequences, y=None, *, on_epoch=None) -> LSTMAutoencoderDetector:
        """Learn from a collection of separate normal recordings, each one sample, of different lengths.

        ``sequences``: a list of frames (same numeric columns; any index) or of 2-D arrays
        ``(steps, sensors)`` (columns named ``x0, x1, ...``). Each sequence is padded at the end to
        ``window`` steps; a Masking layer makes the encoder skip padded steps and they weigh
        nothing in the loss, so padding neither trains nor scores. For ``prediction`` and
        ``composite`` the last ``horizon`` steps of a sequence are the ones predicted from the
        steps before them, so a sequence has ``horizon + 2`` to ``window + horizon`` steps. The
        last ``validation_fraction`` of the sequences are held out (early stopping, thresholds).
        ``on_epoch`` as in :meth:`fit`.
        """
        from anomaly.tfkeras import keras

        self.check_params()
        if self.context_columns:
            raise ConfigError("context_columns are not supported by fit_sequences; fit one series with fit()")
        scaled, indexes = self._sequence_values(sequences, fitting=True)
        timed = [ix for ix in indexes if isinstance(ix, pd.DatetimeIndex) and len(ix) > 2]
        self.interval_ = detect_interval(timed[0]) if timed else pd.Timedelta(seconds=1)  # arrays: 1 s per step
        self.timezone_ = str(timed[0].tz) if timed and timed[0].tz is not None else None
        pad = PAD_VALUE
        inputs, lengths, futures = self._pack(scaled, pad)
        n_val = int(round(len(scaled) * self.validation_fraction))
        n_train = len(scaled) - n_val
        if n_train < MIN_TRAIN_SEQUENCES or (self.validation_fraction > 0 and n_val < MIN_VAL_SEQUENCES):
            raise DataError(
                f"too few sequences to fit: {n_train} for training and {n_val} held out "
                f"(need at least {MIN_TRAIN_SEQUENCES} and {MIN_VAL_SEQUENCES})"
            )
        train, val = np.arange(n_train), np.arange(n_train, len(scaled))

        keras.utils.set_random_seed(self.seed)
        self._train(
            self._build(pad_value=pad),
            len(train),
            len(val),
            lambda idx: self._sequence_batch(inputs, lengths, futures, train[idx]),
            lambda idx: self._sequence_batch(inputs, lengths, futures, val[idx]),
            on_epoch=on_epoch,
        )

        held = val if len(val) else train
        _, row_errors, _ = self._sequence_forward(inputs[held], lengths[held], futures[held] if futures is not None else None)
        covered = np.isfinite(row_errors).all(axis=1)
        self.error_ref_ = np.maximum(np.nanmean(row_errors[covered], axis=0), 1e-12)
        normal_scores = self.sensor_mean(row_errors)[covered]
        self.thresholds_ = thr.fit_thresholds(normal_scores, self.quantile, self.k_sigma, self.threshold_rule, self.margin)
        self.normal_scores_ = np.sort(normal_scores)
        self.normal_errors_ = normal_scores[-MAX_NORMAL_ERRORS:]  # saved with every model (recordings: one score each)
        self.stride_ = 1  # a recording is one window
        self.fingerprint_ = _sequences_fingerprint(self.columns_, scaled, indexes)
        return self

    def score_sequences(
        self, sequences, *, threshold: float | None = None, quantile: float | None = None, reconstruct: bool = False
    ) -> list[pd.DataFrame]:
        """One score frame per sequence, with the columns of :meth:`score` and the sequence's own index.

        Steps estimated by nothing (for ``prediction``, the steps before the last ``horizon``) score NaN.
        """
        self._check_sequence_model()
        scaled, indexes = self._sequence_values(sequences, fitting=False)
        inputs, lengths, futures = self._pack(scaled, self._pad_value())
        firsts, row_errors, recon = self._sequence_forward(inputs, lengths, futures, reconstruct)
        limit = self.threshold_for(threshold, quantile)
        frames = []
        for first, v, index in zip(firsts, scaled, indexes):
            rows = slice(int(first), int(first) + len(v))
            errors = row_errors[rows]
            score = self.combine(errors, index)
            out = pd.DataFrame({"score": score, "threshold": limit}, index=index)
            out["is_anomaly"] = np.nan_to_num(score, nan=-np.inf) > limit
            original = None
            if recon is not None:
                original = self.scaler_.inverse_transform(np.nan_to_num(recon[rows]))
                original[~np.isfinite(recon[rows])] = np.nan
            frames.append(scoring.add_sensor_columns(out, self.columns_, errors, original))
        return frames

    def embed_sequences(self, sequences) -> pd.DataFrame:
        """The encoder's vector of every sequence (padding skipped): ``sequence, steps, z0..``."""
        self._check_sequence_model()
        scaled, _ = self._sequence_values(sequences, fitting=False)
        inputs, lengths, _ = self._pack(scaled, self._pad_value())
        vectors = np.concatenate([self._encoder()(inputs[b]) for b in batched(np.arange(len(inputs)), 1024)])
        out = pd.DataFrame(vectors, columns=[f"z{i}" for i in range(vectors.shape[1])])
        out.insert(0, "steps", [len(v) for v in scaled])
        out.insert(0, "sequence", np.arange(len(scaled)))
        return out

    # -- persistence ------------------------------------------------------------------------
    def save(self, directory: str | Path, *, onnx: bool | None = None) -> Path:
        """Write the model directory atomically (``model.keras`` + ``detector.json`` + ``model.onnx``).

        ``model.onnx`` is the same inference graph for ONNX Runtime, which scores without
        TensorFlow (``load(engine="auto")``, what the CLI uses). ``onnx``: None exports it where it
        can (models fitted with ``fit``; sequence models are not exported), True insists, False skips.
        """
        from anomaly.artifacts import save_detector

        self._check_fitted()
        self._check_keras("saving")
        if onnx and self._is_sequence_model():
            raise ConfigError("ONNX export is for models fitted on one series (fit), not on sequences")
        export = not self._is_sequence_model() if onnx is None else onnx
        return save_detector(self, Path(directory), onnx=export)

    @classmethod
    def save_flagging(cls, directory: str | Path, **settings) -> None:
        """Store new causal-flagging settings (``local_k``, ``local_trailing``, ``local_exclude``, ``local_cap``,
        ``prune``, ``event_padding``) in a saved model directory, checked as the constructor's are."""
        from anomaly.artifacts import FLAGGING_PARAMS, read_metadata, update_params

        directory = Path(directory)
        unknown = sorted(set(settings) - set(FLAGGING_PARAMS))
        if unknown:
            raise ModelError(f"not a flagging setting: {', '.join(unknown)} (one of {', '.join(FLAGGING_PARAMS)})")
        merged = {**read_metadata(directory)["params"], **settings}
        try:
            cls(**{k: tuple(v) if isinstance(v, list) else v for k, v in merged.items()}).check_params()
        except AnomalyError as exc:
            raise ModelError(f"invalid flagging setting ({first_line(exc, 300)})") from None
        update_params(directory, settings)

    @classmethod
    def load(cls, directory: str | Path, *, engine: str = "tensorflow") -> LSTMAutoencoderDetector:
        """Load and validate a model directory written by :meth:`save` (Keras ``safe_mode=True``).

        ``engine``: ``"tensorflow"`` (the Keras model: everything works), ``"onnx"`` (the ONNX
        export with ONNX Runtime: scoring only, without importing TensorFlow; starts in about a
        second) or ``"auto"`` (ONNX where the model has an export and onnxruntime is installed).
        """
        from anomaly.artifacts import load_detector

        return load_detector(cls, Path(directory), engine)

    # -- scikit-learn / PyOD conventions ----------------------------------------------------
    def decision_function(self, X: pd.DataFrame) -> np.ndarray:
        """The anomaly score of every row of ``X`` (higher: more anomalous), NaN where no window covers it.

        ``score(X)["score"]`` as a float array aligned with ``X``'s rows, for tools that expect an
        estimator's scores (PyOD's sign; scikit-learn's own outlier detectors use the opposite one).
        """
        return self.score(X)["score"].to_numpy(dtype=np.float64)

    def predict(self, X: pd.DataFrame) -> np.ndarray:
        """1 for every anomalous row of ``X``, else 0: ``score(X)["is_anomaly"]`` as ints (PyOD's labels)."""
        return self.score(X)["is_anomaly"].to_numpy(dtype=np.int64)


def _check_frame(X) -> pd.DataFrame:
    if not isinstance(X, pd.DataFrame):
        raise DataError(f"expected a pandas DataFrame indexed by timestamp, not {type(X).__name__}")
    if not isinstance(X.index, pd.DatetimeIndex):
        raise DataError("expected a frame indexed by timestamp (a DatetimeIndex); use anomaly.load_series()")
    if X.shape[1] == 0:
        raise DataError("the frame has no sensor column")
    non_numeric = [c for c in X.columns if not pd.api.types.is_numeric_dtype(X[c])]
    if non_numeric:
        raise DataError(f"non-numeric column(s) {', '.join(map(repr, non_numeric))}")
    if not X.index.is_monotonic_increasing or X.index.has_duplicates:
        raise DataError("the frame's timestamps must be sorted and unique; use anomaly.load_series()")
    return X


def _check_sequences(sequences, columns: list[str] | None) -> list[pd.DataFrame]:
    """Each sequence as a numeric frame with the expected columns and no missing value."""
    if isinstance(sequences, (pd.DataFrame, np.ndarray)) or not hasattr(sequences, "__len__") or len(sequences) == 0:
        raise DataError("expected a non-empty list of sequences (frames or 2-D arrays)")
    frames = []
    for i, seq in enumerate(sequences):
        if isinstance(seq, pd.DataFrame):
            frame = seq
            non_numeric = [c for c in frame.columns if not pd.api.types.is_numeric_dtype(frame[c])]
            if non_numeric:
                raise DataError(f"sequence {i}: non-numeric column(s) {', '.join(map(repr, non_numeric))}")
        else:
            try:
                arr = np.asarray(seq, dtype=np.float64)
            except (TypeError, ValueError):
                raise DataError(f"sequence {i}: not numeric") from None
            arr = arr[:, None] if arr.ndim == 1 else arr
            if arr.ndim != 2:
                raise DataError(f"sequence {i}: expected a 2-D array (steps, sensors), got {arr.ndim} dimensions")
            if columns is not None and arr.shape[1] != len(columns):
                raise DataError(f"sequence {i}: {arr.shape[1]} column(s); the model has {len(columns)} ({', '.join(columns)})")
            frame = pd.DataFrame(arr, columns=[f"x{j}" for j in range(arr.shape[1])])
        if frame.shape[1] == 0:
            raise DataError(f"sequence {i}: no sensor column")
        expected = columns if columns is not None else (list(map(str, frames[0].columns)) if frames else None)
        if expected is not None:
            missing = [c for c in expected if c not in map(str, frame.columns)]
            if missing:
                raise DataError(
                    f"sequence {i}: lacks column(s) {', '.join(map(repr, missing))} (expected: {', '.join(expected)})"
                )
            frame = frame.rename(columns=str)[expected]
        bad = ~np.isfinite(frame.to_numpy(dtype=np.float64))
        if bad.any():
            row, col = (int(a[0]) for a in np.nonzero(bad))
            raise DataError(f"sequence {i} row {row} column '{frame.columns[col]}': missing or infinite value")
        frames.append(frame)
    return frames


def _sequences_fingerprint(columns: list[str], scaled: list[np.ndarray], indexes: list[pd.Index]) -> dict:
    """A stable digest of a collection of sequences (columns, lengths, scaled values)."""
    digest = hashlib.sha256()
    digest.update("\x1f".join(columns).encode())
    for v in scaled:
        digest.update(np.int64(len(v)).tobytes())
        digest.update(np.ascontiguousarray(v, dtype=np.float32).tobytes())
    return {
        "sha256": digest.hexdigest(),
        "rows": int(sum(len(v) for v in scaled)),
        "sequences": len(scaled),
        "start": str(indexes[0][0]),
        "end": str(indexes[-1][-1]),
    }


def fingerprint(X: pd.DataFrame) -> dict:
    """A stable digest of the training data (columns, timestamps, values) to tell models apart."""
    digest = hashlib.sha256()
    digest.update("\x1f".join(map(str, X.columns)).encode())
    digest.update(np.ascontiguousarray(X.index.as_unit("ns").asi8).tobytes())
    digest.update(np.ascontiguousarray(X.to_numpy(dtype=np.float64)).tobytes())
    return {
        "sha256": digest.hexdigest(),
        "rows": int(len(X)),
        "start": X.index[0].isoformat(),
        "end": X.index[-1].isoformat(),
    }
