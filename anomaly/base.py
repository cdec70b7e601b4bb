"""What every LSTM autoencoder detector shares: the model's hyperparameters, scaling, Keras training,
the engines, fixed thresholds from held-out normal errors, and the saved state.

Two detectors build on it: :class:`anomaly.detector.LSTMAutoencoderDetector` (one long series cut
into sliding windows, flagged causally) and :class:`anomaly.sequences.LSTMSequenceDetector` (a
collection of separate short recordings, one sample each). A subclass says how its inputs become
batches and rows of errors; this class turns those errors into scores and thresholds the same way
for both, so the two cannot drift apart.
"""

from __future__ import annotations

import inspect
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, ClassVar

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator
from sklearn.preprocessing import StandardScaler

from anomaly import params, scoring, seasonal
from anomaly import thresholds as thr
from anomaly.errors import ConfigError, DataError, NotFittedError
from anomaly.io import codes_text
from anomaly.params import param
from anomaly.windows import reverse_steps, shift_right

if TYPE_CHECKING:
    from anomaly.engine import Engine

log = logging.getLogger("anomaly")

CONSTANT_POLICIES = ("error", "keep")
MODEL_KINDS = ("reconstruction", "prediction", "composite", "aer")  # same as anomaly.model.MODEL_KINDS
MAX_NORMAL_ERRORS = 20000  # held-out row scores kept (the latest) to seed and cap causal flagging
MAX_NORMAL_SCORES = 20000  # a sorted sample of them is enough to recompute any quantile threshold
SCALE_BLOCK = 1 << 20  # rows scaled at a time (see _scale)
# A scaled value beyond this many standard deviations cannot be scored: its squared error overflows
# float32 (about 3.4e38) and the row would be left without a score, unflagged, as if missing.
MAX_SCALED = 1e18


@dataclass(repr=False, eq=False)  # __init__ from the fields; scikit-learn's repr and identity
class AutoencoderBase(BaseEstimator):
    """The shared half of the LSTM autoencoder detectors (see the module docstring); not used alone.

    ``model_kind`` chooses the decoder(s) (Srivastava et al. 2015): ``reconstruction`` rebuilds the
    input, ``prediction`` predicts the ``horizon`` steps after it, ``composite`` does both from one
    encoder, trained on ``mse(reconstruction) + prediction_weight * mse(prediction)``. ``reverse``
    makes the reconstruction target the input reversed in time; ``conditional`` feeds each decoder
    its previous output; ``bidirectional`` reads every LSTM layer's input both ways.
    """

    # What a subclass's saved directory is (detector.json "fitted_on") and whether it exports ONNX.
    FITTED_ON: ClassVar[str] = ""
    ONNX_EXPORT: ClassVar[bool] = False

    # Every hyperparameter, declared once (anomaly.params): the constructor's argument and default,
    # its rule, its `anomaly train` option and its dashboard field. Rules joining several are in
    # check_params. The defaults are the configuration `anomaly bench` measures.
    # -- model
    window: int = param(32, "int", "window length in points", low=2, flag="--window")
    encoder_units: tuple[int, ...] = param(
        (32,), "units", "encoder LSTM units per layer, e.g. 64 or 64,32", flag="--units", label="LSTM units"
    )
    decoder_units: tuple[int, ...] | None = param(
        None,
        "units",
        "decoder LSTM units per layer (None: the encoder's, reversed)",
        flag="--decoder-units",
        default_text="the encoder's, reversed",
        none=True,
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
        "decoder(s): rebuild the window, predict the steps after it, both, or (aer) the steps before, "
        "the window and the steps after, with bidirectional layers (Wong et al. 2022)",
        choices=MODEL_KINDS,
        flag="--model-kind",
        group="kind",
    )
    horizon: int = param(
        1,
        "int",
        "steps predicted after each window (prediction, composite, aer) and before it (aer)",
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
    # -- fixed thresholds (the series detector's with local_rule=None; always the sequence detector's)
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
    # -- scoring details
    normalize_errors: bool = param(
        False,
        "bool",
        "divide each sensor's error by its normal level before the mean over sensors",
        flag="--normalize-errors",
        group="other",
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

    def set_params(self, **params):
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
        if self.bidirectional and self.conditional:
            raise ConfigError("bidirectional does not work with a conditional decoder (it runs forwards one step at a time)")
        if self.model_kind == "aer" and self.conditional:
            raise ConfigError("model_kind 'aer' reads both ways: it does not work with a conditional decoder")
        if self.reverse and self.model_kind == "prediction":
            raise ConfigError("reverse applies to the reconstruction decoder, which model_kind 'prediction' does not have")

    def decoder_layers(self) -> tuple[int, ...]:
        """The decoder's layers: as given, or the encoder's in reverse (a mirror of it)."""
        return tuple(self.decoder_units) if self.decoder_units is not None else tuple(reversed(self.encoder_units))

    # -- columns ----------------------------------------------------------------------------
    def _context(self) -> tuple[str, ...]:
        """Input-only columns, read by the encoder but never rebuilt nor scored (none by default)."""
        return ()

    @property
    def target_columns_(self) -> list[str]:
        """The columns the model rebuilds and scores: every column but the input-only ones."""
        context = set(self._context())
        return [c for c in self.columns_ if c not in context]

    def _target_index(self) -> np.ndarray | slice:
        """Positions of the target columns among ``columns_`` (a plain slice when all are targets)."""
        if not self._context():
            return slice(None)
        context = set(self._context())
        return np.array([i for i, c in enumerate(self.columns_) if c not in context], dtype=np.int64)

    def _target_values(self, values: np.ndarray) -> np.ndarray:
        """The scaled target columns of ``values`` (``values`` itself when every column is a target)."""
        return values if not self._context() else np.ascontiguousarray(values[:, self._target_index()])

    def _unscale_targets(self, scaled: np.ndarray) -> np.ndarray:
        """Scaled estimates of the target columns back in original units (NaN stays NaN)."""
        tgt = self._target_index()
        return scaled * self.scaler_.scale_[tgt] + self.scaler_.mean_[tgt]

    # -- the model --------------------------------------------------------------------------
    def _horizon(self) -> int:
        """Rows predicted after each window (0 when there is no prediction decoder)."""
        return 0 if self.model_kind == "reconstruction" else int(self.horizon)

    def _lead(self) -> int:
        """Rows predicted before each window (``aer``'s backward decoder; 0 for the other kinds)."""
        return int(self.horizon) if self.model_kind == "aer" else 0

    def _outputs(self) -> list[str]:
        """The decoders, in the order of the model's outputs."""
        return {
            "reconstruction": ["reconstruction"],
            "prediction": ["prediction"],
            "composite": ["reconstruction", "prediction"],
            "aer": ["backward", "reconstruction", "prediction"],
        }[self.model_kind]

    def output_shapes(self, n_features: int) -> list[tuple]:
        """Shape of each output of the saved model, in order (checked when a model directory is loaded)."""
        steps = {"reconstruction": self.window, "prediction": int(self.horizon), "backward": int(self.horizon)}
        n_targets = n_features - len(self._context())
        return [(None, steps[name], n_targets) for name in self._outputs()]

    def _build(self, pad_value: float | None = None):
        """The Keras models (training and inference), their weights drawn from ``seed``."""
        from anomaly.model import build_model
        from anomaly.tfkeras import keras

        # int() and float(): Keras refuses the numpy scalars a grid of np.arange gives, which check_params allows
        keras.utils.set_random_seed(int(self.seed))
        return build_model(
            kind=self.model_kind,
            window=int(self.window),
            n_features=self.n_features_in_,
            n_outputs=self.n_features_in_ - len(self._context()),
            encoder_units=tuple(map(int, self.encoder_units)),
            decoder_units=tuple(map(int, self.decoder_layers())),
            latent_dim=int(self.latent_dim),
            horizon=int(self.horizon),
            activation=self.activation,
            dropout=float(self.dropout),
            learning_rate=float(self.learning_rate),
            conditional=bool(self.conditional),
            prediction_weight=float(self.prediction_weight),
            pad_value=pad_value,
            bidirectional=bool(self.bidirectional),
        )

    def _train(self, built, n_train: int, n_val: int, make_train, make_val, on_epoch=None) -> None:
        """Fit ``built.train`` on batches from ``make_*(indices)``; keep ``built.infer`` as ``model_``.

        ``on_epoch(epoch, logs)``, if given, is called after every epoch with the 0-based epoch and a
        dict of plain floats (``loss``, ``val_loss``): a progress hook for a UI, free of Keras types.
        """
        from anomaly.model import Batches, EpochHook, EpochProgress, StopSignals
        from anomaly.tfkeras import keras

        self.model_ = built.infer
        self._built_with = self._structure()
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
        stop = StopSignals()  # Ctrl-C / SIGTERM end training at a batch boundary, then are raised
        with stop.deferred():
            history = built.train.fit(
                train_data, validation_data=val_data, epochs=self.epochs, callbacks=[*callbacks, stop], verbose=0
            )
        self.history_ = {k: [float(v) for v in vals] for k, vals in history.history.items()}

    def _targets_to_batch(self, x: np.ndarray, targets: list[np.ndarray]):
        """Model inputs and targets: the input, plus teacher-forcing inputs for a conditional decoder."""
        # Tuples, not lists: a PyDataset's nested structure must be tuples for tf.data.
        inputs = (x, *[shift_right(t) for t in targets]) if self.conditional else x
        return inputs, (targets[0] if len(targets) == 1 else tuple(targets))

    def _reconstruction_target(self, x: np.ndarray, lengths: np.ndarray | None = None) -> np.ndarray:
        """What the reconstruction decoder learns to output for inputs ``x``: ``x``, or ``x`` reversed."""
        return reverse_steps(x, lengths) if self.reverse else x

    # -- scaling ----------------------------------------------------------------------------
    def _fit_scaler(self, X: pd.DataFrame) -> None:
        finite = X[np.isfinite(X.to_numpy()).all(axis=1)]
        if len(finite) == 0:
            raise DataError("normal period has no complete row")
        with np.errstate(over="ignore", invalid="ignore"):  # an overflow is reported just below, by column
            self.scaler_ = StandardScaler().fit(finite.to_numpy())
        spread = self.scaler_.mean_ + self.scaler_.var_  # var_, not scale_: scikit-learn sets an overflowed scale_ to 1
        if not np.isfinite(spread).all():
            col = self.columns_[int(np.flatnonzero(~np.isfinite(spread))[0])]
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

    def _scale(self, X: pd.DataFrame) -> np.ndarray:
        """Scaled float32 values; a value too large to score once scaled (:data:`MAX_SCALED`: an overload
        code such as 9.9e37, say) is a :class:`DataError` naming it.

        Scaled in blocks of rows, so a long series needs no float64 copy of its own length.
        """
        raw = X.to_numpy(dtype=np.float64)
        scaled = np.empty(raw.shape, dtype=np.float32)
        for lo in range(0, len(raw), SCALE_BLOCK):
            block = raw[lo : lo + SCALE_BLOCK]
            levels = self._levels(X.index[lo : lo + SCALE_BLOCK], self.columns_)
            if levels is not None:  # less each sensor's seasonal profile, a block at a time
                block = block - levels
            with np.errstate(over="ignore", invalid="ignore"):
                scaled[lo : lo + SCALE_BLOCK] = self.scaler_.transform(block)
            with np.errstate(invalid="ignore"):
                overflow = np.isfinite(block) & ~(np.abs(scaled[lo : lo + SCALE_BLOCK]) <= MAX_SCALED)
            if overflow.any():
                row, col = (int(a[0]) for a in np.nonzero(overflow))
                codes = (self.reading_ or {}).get("missing_values")
                also = f"; list the model's codes too ({codes_text(codes)}): codes given replace them" if codes else ""
                raise DataError(
                    f"column '{self.columns_[col]}' at {X.index[lo + row]}: value {X.iat[lo + row, col]:g} is too large "
                    f"to score (a logger's code for no reading? read it as missing with --missing-values, or leave the cell empty{also})"
                )
        return scaled

    def _profiles(self) -> dict:
        """Seasonal profiles by column (:mod:`anomaly.seasonal`): none here; the series detector learns them."""
        return {}

    def _levels(self, index: pd.Index, columns: list[str]) -> np.ndarray | None:
        """The seasonal level of ``columns`` at each timestamp of ``index``; None where none has a profile."""
        profiles = self._profiles()
        if not any(c in profiles for c in columns):
            return None
        return seasonal.offsets_of(index, columns, profiles, self.timezone_)

    # -- engines ----------------------------------------------------------------------------
    # The hyperparameters the fitted network and its windows are built from: one changed by
    # set_params on a fitted detector leaves a model of another shape, unusable until refitted.
    STRUCTURAL: ClassVar[tuple[str, ...]] = (
        "window", "encoder_units", "decoder_units", "latent_dim", "activation",
        "model_kind", "horizon", "reverse", "conditional", "bidirectional",
    )  # fmt: skip

    def _structure(self) -> dict:
        # a reconstruction model predicts no steps: its horizon changes nothing
        skip = ("horizon",) if self.model_kind == "reconstruction" else ()
        return {name: getattr(self, name) for name in self.STRUCTURAL if name not in skip}

    def _check_fitted(self) -> None:
        if not hasattr(self, "model_"):
            raise NotFittedError("this detector is not fitted yet: call fit() or load() first")
        built = getattr(self, "_built_with", None) or {}
        for name, value in built.items():
            if _as_tuple(getattr(self, name)) != _as_tuple(value):
                raise ConfigError(
                    f"{name} is {getattr(self, name)!r} but the model was fitted with {value!r}: fit again after changing it"
                )

    def _onnx_loaded(self) -> bool:
        """Whether ``model_`` is an ONNX Runtime session (``load(engine="onnx")``), not a Keras model."""
        from anomaly.engine import OnnxModel

        return isinstance(self.model_, OnnxModel)

    def _check_keras(self, what: str) -> None:
        if self._onnx_loaded():
            raise ConfigError(f"{what} needs the Keras model: load this detector with engine='tensorflow', not 'onnx'")

    def __getstate__(self) -> dict:
        """The detector less its compiled predictors (TensorFlow graphs, rebuilt on first use), so that
        ``copy.deepcopy`` works: tuning the flagging on a copy (:meth:`reflag`) needs one."""
        state = self.__dict__.copy()
        state.pop("_predictor_cache", None)
        state.pop("_encoder_cache", None)
        return state

    def _predictor(self) -> Engine:
        if self._onnx_loaded():  # the session is the predictor
            return self.model_
        from anomaly.model import Predictor  # imports TensorFlow: only past the ONNX case

        cache = getattr(self, "_predictor_cache", None)
        if cache is None or cache.model is not self.model_:  # a new model_ (fit again, load) needs a new one
            self._predictor_cache = Predictor(self.model_)
        return self._predictor_cache

    def _encoder(self):
        self._check_keras("embedding")
        from anomaly.model import Predictor, encoder_of

        if getattr(self, "_encoder_cache", None) is None:
            self._encoder_cache = Predictor(encoder_of(self.model_))
        return self._encoder_cache

    # -- scores and fixed thresholds ----------------------------------------------------------
    def sensor_mean(self, row_errors: np.ndarray) -> np.ndarray:
        """Mean error over sensors per row; each sensor's first divided by ``error_ref_`` with ``normalize_errors``."""
        with np.errstate(invalid="ignore"):
            return (row_errors / self.error_ref_ if self.normalize_errors else row_errors).mean(axis=1)

    def combine(self, row_errors: np.ndarray) -> np.ndarray:
        """One score per row from its per-sensor errors: here the mean over sensors."""
        return self.sensor_mean(row_errors)

    def _learn_normal(self, row_errors: np.ndarray) -> None:
        """Learn from the per-row errors of held-out normal data: each sensor's error level
        (``error_ref_``), the fixed thresholds and the normal scores they come from."""
        covered = np.isfinite(row_errors).all(axis=1)
        self.error_ref_ = np.maximum(np.nanmean(row_errors[covered], axis=0), 1e-12)
        normal_scores = self.combine(row_errors)[covered]
        self.normal_errors_ = self.sensor_mean(row_errors)[covered][-MAX_NORMAL_ERRORS:]  # time order: seeds flagging
        self.thresholds_ = thr.fit_thresholds(normal_scores, self.quantile, self.k_sigma, self.threshold_rule, self.margin)
        self.normal_scores_ = np.sort(normal_scores)

    def threshold_for(self, threshold: float | None = None, quantile: float | None = None) -> float:
        """The threshold in force: an explicit value, a quantile of the normal scores, or the fitted rule."""
        self._check_fitted()
        if threshold is not None:
            return thr.fixed_threshold(threshold)
        if quantile is not None:
            return thr.quantile_threshold(self.normal_scores_, quantile)
        return float(self.thresholds_["values"][self.thresholds_["rule"]])

    @staticmethod
    def _fixed_flags(score: np.ndarray, limit: float, index: pd.Index) -> pd.DataFrame:
        """``score, threshold, is_anomaly`` under one fixed threshold; NaN (no estimate) is never above it."""
        out = pd.DataFrame({"score": score, "threshold": limit}, index=index)
        with np.errstate(invalid="ignore"):
            out["is_anomaly"] = score > limit
        return out

    def _with_sensor_columns(self, out: pd.DataFrame, row_errors: np.ndarray, recon: np.ndarray | None) -> pd.DataFrame:
        """``out`` with the error columns (and the estimates in original units) of :mod:`anomaly.scoring`."""
        original = None if recon is None else self._unscale_targets(recon)
        levels = None if original is None else self._levels(out.index, self.target_columns_)
        if levels is not None:  # estimates of the de-seasonalised series: the profile added back
            original = original + levels
        return scoring.add_sensor_columns(out, self.target_columns_, row_errors, original)

    # -- persistence ------------------------------------------------------------------------
    def fitted_state(self) -> dict:
        """The learned state as JSON values: what ``detector.json`` holds beside the hyperparameters."""
        return {
            "columns": self.columns_,
            "interval_seconds": self.interval_.total_seconds(),
            "timezone": self.timezone_,
            "scaler": {
                "mean": self.scaler_.mean_.tolist(),
                "scale": self.scaler_.scale_.tolist(),
                "var": self.scaler_.var_.tolist(),
            },
            "error_ref": self.error_ref_.tolist(),
            "thresholds": self.thresholds_,
            "normal_scores": _sorted_sample(self.normal_scores_, MAX_NORMAL_SCORES),
            "normal_errors": [float(v) for v in self.normal_errors_],  # time order: seed of causal flagging
            "history": self.history_,
            "fingerprint": self.fingerprint_,
            "reading": self.reading_,
        }

    def restore(self, state: dict, model) -> AutoencoderBase:
        """Set the learned state from :meth:`fitted_state`'s JSON (checked by :mod:`anomaly.artifacts`)
        and the loaded ``model``; returns ``self``."""
        n = len(state["columns"])
        self.model_ = model
        self._built_with = self._structure()
        self.columns_ = list(state["columns"])
        self.n_features_in_ = n
        self.interval_ = pd.Timedelta(seconds=state["interval_seconds"])
        self.timezone_ = state["timezone"]
        scaler = StandardScaler()
        scaler.mean_ = np.array(state["scaler"]["mean"], dtype=float)
        scaler.scale_ = np.array(state["scaler"]["scale"], dtype=float)
        scaler.var_ = np.array(state["scaler"]["var"], dtype=float)
        scaler.n_features_in_ = n
        scaler.n_samples_seen_ = state["fingerprint"].get("rows", 0)
        self.scaler_ = scaler
        self.error_ref_ = np.array(state["error_ref"], dtype=float)
        self.thresholds_ = state["thresholds"]
        self.normal_scores_ = np.array(state["normal_scores"], dtype=float)
        # Models saved before causal flagging kept only the sorted smoothed scores: the nearest seed there is.
        self.normal_errors_ = np.array(state.get("normal_errors", state["normal_scores"]), dtype=float)
        self.history_ = state["history"]
        self.fingerprint_ = state["fingerprint"]
        self.reading_ = state.get("reading")  # absent from models saved before format 5, or fitted in Python
        self.package_version_ = state.get("package_version")
        return self

    def save(self, directory: str | Path, *, onnx: bool | None = None, reading: dict | None = None) -> Path:
        """Write the model directory atomically (``model.keras`` + ``detector.json`` [+ ``model.onnx``]).

        ``model.onnx`` is the same inference graph for ONNX Runtime, which scores without
        TensorFlow (``load(engine="auto")``, what the CLI uses). ``onnx``: None exports it where the
        detector can (the series detector), True insists, False skips. ``reading``: how the training
        data was read (``anomaly.loading.ReadOptions.saved``: timestamp column, duplicates, max gap,
        missing-value codes), kept as ``reading_`` and saved with it, so the commands read new data
        the same way; None saves the detector's own ``reading_`` (that of the model it was loaded
        from, or of an earlier save; ``fit`` forgets it, the new data being read elsewhere).
        """
        from anomaly.artifacts import checked_reading, save_detector

        self._check_fitted()
        self._check_keras("saving")
        if onnx and not self.ONNX_EXPORT:
            raise ConfigError(f"ONNX export is for models fitted on one series, not by {type(self).__name__}")
        self.reading_ = checked_reading(self.reading_ if reading is None else reading)
        return save_detector(self, Path(directory), onnx=self.ONNX_EXPORT if onnx is None else onnx)

    @classmethod
    def load(cls, directory: str | Path, *, engine: str = "tensorflow"):
        """Load and validate a model directory written by :meth:`save` (Keras ``safe_mode=True``).

        ``engine``: ``"tensorflow"`` (the Keras model: everything works), ``"onnx"`` (the ONNX
        export with ONNX Runtime: scoring only, without importing TensorFlow; starts in about a
        second) or ``"auto"`` (ONNX where the model has an export and onnxruntime is installed).
        """
        from anomaly.artifacts import load_detector

        return load_detector(cls, Path(directory), engine)


def _sorted_sample(values: np.ndarray, n: int) -> list[float]:
    """At most ``n`` of ``values``, sorted and evenly spaced over their ranks (quantiles survive)."""
    values = np.sort(np.asarray(values, dtype=float))
    if len(values) > n:
        values = values[np.linspace(0, len(values) - 1, n).round().astype(int)]
    return [float(v) for v in values]


def _as_tuple(value):
    """Units given as a list (JSON, a user) compare equal to the same units as a tuple."""
    return tuple(value) if isinstance(value, list) else value
