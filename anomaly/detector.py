"""``LSTMAutoencoderDetector``: fit on normal data, score every timestamp, detect events.

scikit-learn conventions: the constructor stores hyperparameters unchanged; ``fit`` learns and
returns ``self``; learned state lives in attributes ending in ``_``. This is the one place that
joins the pure rooms (windows, thresholds, events) with the Keras model and the artifacts.
"""

from __future__ import annotations

import hashlib
import inspect
from pathlib import Path

import numpy as np
import pandas as pd
from sklearn.preprocessing import StandardScaler

from anomaly import events as events_mod
from anomaly import thresholds as thr
from anomaly.errors import ConfigError, DataError, NotFittedError
from anomaly.io import detect_interval
from anomaly.windows import OverlapMean, batched, gather, window_starts

MIN_TRAIN_WINDOWS = 16
MIN_VAL_WINDOWS = 4
CONSTANT_POLICIES = ("error", "keep")


class LSTMAutoencoderDetector:
    """Reconstruction LSTM autoencoder anomaly detector for uni- and multivariate sensor series.

    ``fit(X)`` takes a frame of *normal* operation indexed by timestamp (see :func:`anomaly.load_series`):
    scaling statistics, the model and the thresholds all come from it. The last
    ``validation_fraction`` of its windows are held out (after a gap of one window, so no window
    overlaps both sides) for early stopping and for fitting the thresholds.
    """

    def __init__(
        self,
        window: int = 32,
        stride: int = 1,
        encoder_units: tuple[int, ...] = (64,),
        decoder_units: tuple[int, ...] = (64,),
        latent_dim: int = 16,
        activation: str = "tanh",
        dropout: float = 0.0,
        learning_rate: float = 1e-3,
        batch_size: int = 64,
        epochs: int = 30,
        patience: int = 5,
        validation_fraction: float = 0.2,
        seed: int = 0,
        threshold_rule: str = "quantile",
        quantile: float = 0.995,
        k_sigma: float = 4.0,
        smoothing: int = 0,
        min_event_length: int = 1,
        merge_gap: int = 0,
        on_constant: str = "error",
        verbose: int = 1,
        local_rule: str | None = None,
        local_window: float = 0.33,
        local_k: float = 4.0,
        prune: float = 0.0,
        event_padding: int = 0,
        root_score: bool = False,
    ):
        self.window = window
        self.stride = stride
        self.encoder_units = encoder_units
        self.decoder_units = decoder_units
        self.latent_dim = latent_dim
        self.activation = activation
        self.dropout = dropout
        self.learning_rate = learning_rate
        self.batch_size = batch_size
        self.epochs = epochs
        self.patience = patience
        self.validation_fraction = validation_fraction
        self.seed = seed
        self.threshold_rule = threshold_rule
        self.quantile = quantile
        self.k_sigma = k_sigma
        self.smoothing = smoothing
        self.min_event_length = min_event_length
        self.merge_gap = merge_gap
        self.on_constant = on_constant
        self.verbose = verbose
        # Post-processing (anomaly.postprocess): thresholds relative to the scored batch, pruning, padding.
        self.local_rule = local_rule
        self.local_window = local_window
        self.local_k = local_k
        self.prune = prune
        self.event_padding = event_padding
        self.root_score = root_score

    # -- parameters -------------------------------------------------------------------------
    @classmethod
    def _param_names(cls) -> list[str]:
        return [p for p in inspect.signature(cls.__init__).parameters if p != "self"]

    def get_params(self) -> dict:
        """Hyperparameters as given to the constructor (JSON-friendly: tuples become lists on save)."""
        return {name: getattr(self, name) for name in self._param_names()}

    def set_params(self, **params) -> LSTMAutoencoderDetector:
        for name, value in params.items():
            if name not in self._param_names():
                raise ConfigError(f"unknown parameter '{name}'")
            setattr(self, name, value)
        return self

    def _check_params(self) -> None:
        ints = {"window": 2, "stride": 1, "latent_dim": 1, "batch_size": 1, "epochs": 1, "patience": 0,
                "smoothing": 0, "min_event_length": 1, "merge_gap": 0}
        for name, low in ints.items():
            value = getattr(self, name)
            if not isinstance(value, (int, np.integer)) or isinstance(value, bool) or value < low:
                raise ConfigError(f"{name} must be an integer >= {low}, not {value!r}")
        if self.stride > self.window:
            raise ConfigError(f"stride ({self.stride}) must not exceed window ({self.window}), or rows go unscored")
        for name in ("encoder_units", "decoder_units"):
            units = tuple(getattr(self, name))
            if not units or any(not isinstance(u, (int, np.integer)) or u < 1 for u in units):
                raise ConfigError(f"{name} must be one or more positive integers, not {getattr(self, name)!r}")
        if not 0 <= self.dropout < 1:
            raise ConfigError(f"dropout must be in [0, 1), not {self.dropout}")
        if not 0 <= self.validation_fraction < 1:
            raise ConfigError(f"validation_fraction must be in [0, 1), not {self.validation_fraction}")
        if not self.learning_rate > 0:
            raise ConfigError(f"learning_rate must be positive, not {self.learning_rate}")
        if self.activation not in ("tanh", "relu", "sigmoid", "elu", "selu", "softsign", "linear"):
            raise ConfigError(f"activation '{self.activation}' is not supported")
        if self.on_constant not in CONSTANT_POLICIES:
            raise ConfigError(f"on_constant must be one of {', '.join(CONSTANT_POLICIES)}, not '{self.on_constant}'")
        thr.fit_thresholds([0.0], self.quantile, self.k_sigma, self.threshold_rule)  # validates the rule values
        from anomaly.postprocess import LOCAL_RULES

        if self.local_rule is not None and self.local_rule not in LOCAL_RULES:
            raise ConfigError(f"local_rule must be None or one of {', '.join(LOCAL_RULES)}, not '{self.local_rule}'")
        if not 0 < self.local_window <= 1 or not self.local_k > 0 or not 0 <= self.prune < 1:
            raise ConfigError("local_window must be in (0, 1], local_k > 0 and prune in [0, 1)")
        if not isinstance(self.event_padding, (int, np.integer)) or self.event_padding < 0:
            raise ConfigError(f"event_padding must be an integer >= 0, not {self.event_padding!r}")

    # -- fitting ----------------------------------------------------------------------------
    def fit(self, X: pd.DataFrame, y=None) -> LSTMAutoencoderDetector:
        """Learn scaling, the autoencoder and thresholds from ``X``, a frame of normal operation."""
        from anomaly._tf import keras
        from anomaly.model import EpochProgress, WindowBatches, build_autoencoder

        self._check_params()
        X = _check_frame(X)
        self.columns_ = list(map(str, X.columns))
        self.n_features_in_ = len(self.columns_)
        self.interval_ = pd.Timedelta(X.index.freq) if X.index.freq is not None else detect_interval(X.index)
        self.timezone_ = str(X.index.tz) if X.index.tz is not None else None
        self._fit_scaler(X)
        values = self._scale(X)
        train, val = self._split(window_starts(np.isfinite(values).all(axis=1), self.window, self.stride), len(X))

        keras.utils.set_random_seed(self.seed)
        self.model_ = build_autoencoder(
            window=self.window, n_features=self.n_features_in_, encoder_units=tuple(self.encoder_units),
            decoder_units=tuple(self.decoder_units), latent_dim=self.latent_dim, activation=self.activation,
            dropout=self.dropout, learning_rate=self.learning_rate,
        )
        callbacks = []
        if len(val):
            callbacks.append(keras.callbacks.EarlyStopping(monitor="val_loss", patience=self.patience, restore_best_weights=True))
        if self.verbose:
            callbacks.append(EpochProgress(self.epochs))
        train_data = WindowBatches(values, train, self.window, self.batch_size, shuffle=True, seed=self.seed)
        val_data = WindowBatches(values, val, self.window, self.batch_size, shuffle=False, seed=self.seed) if len(val) else None
        history = self.model_.fit(train_data, validation_data=val_data, epochs=self.epochs, callbacks=callbacks, verbose=0)
        self.history_ = {k: [float(v) for v in vals] for k, vals in history.history.items()}

        # Thresholds come from windows the model did not train on (all of them if none were held out).
        held_out = val if len(val) else train
        row_errors = self._row_errors(values, held_out)
        covered = np.isfinite(row_errors).all(axis=1)
        self.error_ref_ = np.maximum(np.nanmean(row_errors[covered], axis=0), 1e-12)
        normal_scores = self._combine(row_errors, X.index)[covered]
        self.thresholds_ = thr.fit_thresholds(normal_scores, self.quantile, self.k_sigma, self.threshold_rule)
        self.normal_scores_ = np.sort(normal_scores)
        self.fingerprint_ = fingerprint(X)
        return self

    def _fit_scaler(self, X: pd.DataFrame) -> None:
        finite = X[np.isfinite(X.to_numpy()).all(axis=1)]
        if len(finite) == 0:
            raise DataError("normal period has no complete row")
        self.scaler_ = StandardScaler().fit(finite.to_numpy())
        if not (np.isfinite(self.scaler_.mean_).all() and np.isfinite(self.scaler_.scale_).all()):
            col = self.columns_[int(np.flatnonzero(~np.isfinite(self.scaler_.mean_ + self.scaler_.scale_))[0])]
            raise DataError(f"column '{col}': values too large to scale (overflow)")
        constant = self.scaler_.var_ == 0
        if constant.any() and self.on_constant == "error":
            names = ", ".join(repr(self.columns_[i]) for i in np.flatnonzero(constant))
            raise DataError(f"sensor {names} is constant in the normal period; drop it with --columns or use --on-constant keep")

    def _split(self, starts: np.ndarray, n_rows: int) -> tuple[np.ndarray, np.ndarray]:
        """Training and held-out window starts: the last windows are held out, one window apart."""
        n_val = int(round(len(starts) * self.validation_fraction))
        if n_val:
            val = starts[len(starts) - n_val :]
            train = starts[starts + self.window <= val[0]]
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
        with np.errstate(over="ignore", invalid="ignore"):
            scaled = self.scaler_.transform(X.to_numpy(dtype=np.float64)).astype(np.float32)
        overflow = np.isfinite(X.to_numpy()) & ~np.isfinite(scaled)
        if overflow.any():
            row, col = (int(a[0]) for a in np.nonzero(overflow))
            raise DataError(f"column '{self.columns_[col]}' at {X.index[row]}: value {X.iat[row, col]:g} is too large to score")
        return scaled

    def _predictor(self):
        from anomaly.model import Predictor

        if getattr(self, "_predictor_cache", None) is None:
            self._predictor_cache = Predictor(self.model_)
        return self._predictor_cache

    def _forward(self, values: np.ndarray, starts: np.ndarray, reconstruct: bool = False):
        """Per-row, per-sensor mean squared error (and mean reconstruction) over the covering windows."""
        errors = OverlapMean(len(values), values.shape[1])
        recon = OverlapMean(len(values), values.shape[1]) if reconstruct else None
        predict = self._predictor()
        for batch in batched(starts, max(self.batch_size, 1024)):
            x = gather(values, batch, self.window)
            y = predict(x)
            errors.add(batch, (y - x) ** 2)
            if recon is not None:
                recon.add(batch, y)
        return errors.mean(), (recon.mean() if recon is not None else None)

    def _row_errors(self, values: np.ndarray, starts: np.ndarray) -> np.ndarray:
        return self._forward(values, starts)[0]

    def _combine(self, row_errors: np.ndarray, index: pd.DatetimeIndex) -> np.ndarray:
        """One score per row: mean over sensors, optionally EWMA-smoothed over ``smoothing`` rows."""
        with np.errstate(invalid="ignore"):
            score = row_errors.mean(axis=1)
        if self.smoothing > 1:
            score = pd.Series(score).ewm(span=self.smoothing, ignore_na=True).mean().to_numpy().copy()  # pandas 3: read-only view
            score[~np.isfinite(row_errors).all(axis=1)] = np.nan
        return score

    def _prepare(self, X: pd.DataFrame) -> tuple[pd.DataFrame, np.ndarray, np.ndarray]:
        self._check_fitted()
        X = _check_frame(X)
        missing = [c for c in self.columns_ if c not in X.columns]
        if missing:
            raise DataError(
                f"data lacks the model's column(s) {', '.join(map(repr, missing))} "
                f"(model columns: {', '.join(self.columns_)}; data columns: {', '.join(map(str, X.columns))})"
            )
        X = X[self.columns_]
        values = self._scale(X)
        starts = window_starts(np.isfinite(values).all(axis=1), self.window, self.stride)
        if len(starts) == 0:
            raise DataError(
                f"no complete window to score: the series has {len(X)} rows and no stretch without gaps "
                f"of at least one window ({self.window} rows)"
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

    def score(self, X: pd.DataFrame, *, threshold: float | None = None, quantile: float | None = None,
              reconstruct: bool = False) -> pd.DataFrame:
        """Per-timestamp ``score, threshold, is_anomaly`` and ``error_<sensor>`` columns.

        Rows inside gaps (covered by no window) have NaN scores and are never anomalous. With
        ``reconstruct=True`` the mean reconstruction of each sensor (original units) is added as
        ``recon_<sensor>``.
        """
        X, values, starts = self._prepare(X)
        row_errors, recon = self._forward(values, starts, reconstruct)
        score = self._combine(row_errors, X.index)
        limit = self.threshold_for(threshold, quantile)
        out = pd.DataFrame({"score": score, "threshold": limit}, index=X.index)
        out["is_anomaly"] = np.nan_to_num(score, nan=-np.inf) > limit
        if self._postprocessing() and threshold is None and quantile is None:
            # anomaly.postprocess owns the rest: root, EWMA, local threshold, pruning, padding, merging.
            from anomaly.postprocess import flag_scores

            with np.errstate(invalid="ignore"):
                raw = row_errors.mean(axis=1)
            floor = None if self.local_rule is not None else (np.sqrt(limit) if self.root_score else limit)
            out["score"], out["threshold"], out["is_anomaly"] = flag_scores(
                raw, rule=self.local_rule, smoothing=self.smoothing, window_frac=self.local_window, k=self.local_k,
                floor=floor, prune=self.prune, pad=self.event_padding, merge_gap=self.merge_gap,
                min_length=self.min_event_length, root=self.root_score)
        for i, name in enumerate(self.columns_):
            out[f"error_{name}"] = row_errors[:, i]
        if recon is not None:
            original = self.scaler_.inverse_transform(np.nan_to_num(recon))
            original[~np.isfinite(recon)] = np.nan
            for i, name in enumerate(self.columns_):
                out[f"recon_{name}"] = original[:, i]
        return out

    def events(self, scores: pd.DataFrame, threshold: float | None = None) -> pd.DataFrame:
        """Events from a frame returned by :meth:`score`, optionally at another threshold."""
        self._check_fitted()
        contributions = scores[[f"error_{c}" for c in self.columns_]].to_numpy() / self.error_ref_
        if self._postprocessing() and threshold is None:  # flags already final (see score)
            from anomaly.postprocess import events_from_flags

            return events_from_flags(scores.index, scores["score"].to_numpy(), scores["threshold"].to_numpy(),
                                     scores["is_anomaly"].to_numpy(), contributions, self.columns_)
        limit = float(scores["threshold"].iloc[0]) if threshold is None else self.threshold_for(threshold)
        return events_mod.find_events(
            scores.index, scores["score"].to_numpy(), limit, contributions, self.columns_,
            min_length=self.min_event_length, merge_gap=self.merge_gap,
        )

    def _postprocessing(self) -> bool:
        """Whether flags come from :mod:`anomaly.postprocess` (local rule, pruning or padding)."""
        return getattr(self, "local_rule", None) is not None or getattr(self, "prune", 0) > 0 or getattr(self, "event_padding", 0) > 0 or getattr(self, "root_score", False)

    def detect(self, X: pd.DataFrame, *, threshold: float | None = None, quantile: float | None = None) -> pd.DataFrame:
        """Anomaly events (``start, end, peak_score, severity, sensors``) in ``X``."""
        return self.events(self.score(X, threshold=threshold, quantile=quantile))

    def embed(self, X: pd.DataFrame) -> pd.DataFrame:
        """The encoder's fixed-length vector of every window, with the window's start and end time."""
        from anomaly.model import Predictor, encoder_of

        X, values, starts = self._prepare(X)
        if getattr(self, "_encoder_cache", None) is None:
            self._encoder_cache = Predictor(encoder_of(self.model_))
        vectors = np.concatenate([self._encoder_cache(gather(values, b, self.window)) for b in batched(starts, 1024)])
        out = pd.DataFrame(vectors, columns=[f"z{i}" for i in range(vectors.shape[1])])
        out.insert(0, "end", X.index[starts + self.window - 1])
        out.insert(0, "start", X.index[starts])
        return out

    # -- persistence ------------------------------------------------------------------------
    def save(self, directory: str | Path) -> Path:
        """Write the model directory atomically (``model.keras`` + ``detector.json``)."""
        from anomaly.artifacts import save_detector

        self._check_fitted()
        return save_detector(self, Path(directory))

    @classmethod
    def load(cls, directory: str | Path) -> LSTMAutoencoderDetector:
        """Load and validate a model directory written by :meth:`save` (Keras ``safe_mode=True``)."""
        from anomaly.artifacts import load_detector

        return load_detector(cls, Path(directory))


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
