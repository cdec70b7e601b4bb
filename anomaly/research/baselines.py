"""Two simple baselines with the detector's ``fit``/``score`` interface, to show what the LSTM earns.

- :class:`PCABaseline`: PCA reconstruction error (scikit-learn) of short lagged windows of the
  standardised sensors, averaged per timestamp over the windows that cover it, as the detector does.
- :class:`RollingZScoreBaseline`: per-sensor rolling z-score against the trailing window, the
  largest squared z over sensors (squared, like the reconstruction errors, so that the same
  post-processing treats every method's score alike).

``score(X)`` returns a frame indexed like ``X`` with a ``score`` column (higher = more anomalous,
NaN where undefined) and ``error_<sensor>`` columns. Thresholds and events are not the baselines'
business: the benchmark applies the same post-processing to every method's score.
"""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
from sklearn.decomposition import PCA
from sklearn.preprocessing import StandardScaler

from anomaly import scoring
from anomaly.errors import DataError
from anomaly.windows import OverlapMean, batched, gather, window_starts

MAX_PCA_DIMS = 256  # lagged dimensions cap: window shrinks for many sensors, keeping PCA cheap
MAX_PCA_FIT_WINDOWS = 20000


def _values(X: pd.DataFrame, columns: list[str] | None = None) -> np.ndarray:
    if not isinstance(X, pd.DataFrame) or X.shape[1] == 0:
        raise DataError("expected a frame of sensor columns indexed by timestamp")
    if columns is not None:
        missing = [c for c in columns if c not in X.columns]
        if missing:
            raise DataError(f"data lacks column(s) {', '.join(map(repr, missing))}")
        X = X[columns]
    return X.to_numpy(dtype=np.float64)


class PCABaseline:
    """Reconstruction error of lagged windows through a PCA keeping ``variance`` of the variance."""

    def __init__(self, window: int = 32, variance: float = 0.9, seed: int = 0):
        self.window = window
        self.variance = variance
        self.seed = seed

    def _lag(self, n_features: int) -> int:
        return int(max(1, min(self.window, MAX_PCA_DIMS // max(n_features, 1))))

    def fit(self, X: pd.DataFrame, y=None) -> PCABaseline:
        self.columns_ = list(map(str, X.columns))
        values = _values(X)
        finite = np.isfinite(values).all(axis=1)
        self.scaler_ = StandardScaler().fit(values[finite])
        self.scaler_.scale_[self.scaler_.scale_ == 0] = 1.0
        scaled = self.scaler_.transform(np.nan_to_num(values))
        self.lag_ = self._lag(values.shape[1])
        starts = window_starts(finite, self.lag_, 1)
        if len(starts) < 2:
            raise DataError(f"too few complete rows ({int(finite.sum())}) to fit the PCA baseline")
        if len(starts) > MAX_PCA_FIT_WINDOWS:
            starts = starts[np.linspace(0, len(starts) - 1, MAX_PCA_FIT_WINDOWS).astype(int)]
        flat = gather(scaled, starts, self.lag_).reshape(len(starts), -1)
        n_comp = self.variance if flat.shape[1] > 1 else 1
        # A constant sensor (SMAP has some) has zero total variance: scikit-learn's explained-variance
        # ratio then divides 0 by 0 and warns, though the fit (every component, zero error) is right.
        with np.errstate(invalid="ignore", divide="ignore"):
            self.pca_ = PCA(n_components=n_comp, svd_solver="full", random_state=self.seed).fit(flat)
        return self

    def score(self, X: pd.DataFrame) -> pd.DataFrame:
        values = _values(X, self.columns_)
        finite = np.isfinite(values).all(axis=1)
        scaled = self.scaler_.transform(np.nan_to_num(values))
        errors = OverlapMean(len(values), values.shape[1])
        for batch in batched(window_starts(finite, self.lag_, 1), 4096):
            x = gather(scaled, batch, self.lag_)
            flat = x.reshape(len(batch), -1)
            recon = self.pca_.inverse_transform(self.pca_.transform(flat)).reshape(x.shape)
            errors.add(batch, (recon - x) ** 2)
        return _frame(X.index, errors.mean(), self.columns_, "mean")


class RollingZScoreBaseline:
    """Largest per-sensor |x - trailing mean| / trailing std over a window of ``window`` rows.

    ``fit`` keeps the last ``window`` rows of the fitting data so that scoring a following period
    starts with a full trailing window; it learns nothing else.
    """

    def __init__(self, window: int = 64):
        self.window = window

    def fit(self, X: pd.DataFrame, y=None) -> RollingZScoreBaseline:
        self.columns_ = list(map(str, X.columns))
        self.history_ = X[self.columns_].iloc[-self.window :].astype(float)
        return self

    def score(self, X: pd.DataFrame) -> pd.DataFrame:
        _values(X, self.columns_)
        frame = X[self.columns_].astype(float)
        head = self.history_[self.history_.index < frame.index[0]] if len(frame) else self.history_
        both = pd.concat([head, frame])
        past = both.shift(1).rolling(self.window, min_periods=max(2, self.window // 4))
        # A floor on the trailing std keeps a jump out of a constant stretch large but finite.
        floor = (both.std() * 1e-2).clip(lower=1e-9)
        z = ((both - past.mean()) / past.std().clip(lower=floor, axis=1)).abs().to_numpy()[len(head) :]
        return _frame(X.index, z**2, self.columns_, "max")


def _frame(index: pd.DatetimeIndex, errors: np.ndarray, columns: list[str], how: str) -> pd.DataFrame:
    with np.errstate(invalid="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # nanmax of an all-NaN row (a gap) is NaN, as meant
        score = np.nanmax(errors, axis=1) if how == "max" else errors.mean(axis=1)
    return scoring.add_sensor_columns(pd.DataFrame({"score": score}, index=index), columns, errors)
