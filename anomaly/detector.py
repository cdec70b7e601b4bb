"""``LSTMAutoencoderDetector``: fit on one normal series, score every timestamp, detect events.

scikit-learn conventions: the constructor stores hyperparameters unchanged; ``fit`` learns and
returns ``self``; learned state lives in attributes ending in ``_``. What it shares with the
sequence detector (model, scaling, training, thresholds, saving) is :class:`anomaly.base.AutoencoderBase`;
here are the series' own parts: sliding windows, the scoring seam, causal flagging and events.
"""

from __future__ import annotations

import hashlib
import logging
import math
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

import numpy as np
import pandas as pd

from anomaly import events as events_mod
from anomaly import flagging, mixture, scoring, seasonal
from anomaly.base import AutoencoderBase
from anomaly.errors import AnomalyError, ConfigError, DataError, ModelError, TooFewRowsError, first_line
from anomaly.io import detect_interval, infinite_as_missing, on_grid, zone_name
from anomaly.params import param
from anomaly.postprocess import LOCAL_RULES
from anomaly.windows import (
    OverlapMean,
    OverlapMedian,
    batched,
    coverage,
    future_starts,
    gather,
    reverse_steps,
    segments,
    span_starts,
    window_starts,
)

MIN_TRAIN_WINDOWS = 16
MIN_VAL_WINDOWS = 4
OVERLAPS = ("mean", "median")
COMBINATIONS = ("mean", *mixture.JOINS)
MAX_TRAIN_WINDOWS = 2500  # stride="auto" grows the stride on long series so a fit sees about this many windows
TRAILING_RULE = flagging.TRAILING  # the causal rule; the others (postprocess.LOCAL_RULES) judge the whole batch
log = logging.getLogger("anomaly")


def smoothing_span(smoothing: int, stride: int) -> int:
    """The score's EWMA span for a fit at ``stride``: ``smoothing`` times the square root of the stride.

    At stride s a row's error averages about ``window / s`` windows instead of ``window`` (scoring
    uses the fit's grid), so the score of a long, strided series is noisier per row and wants a
    longer span. The square root was chosen by leave-one-group-out on the five benchmark groups among
    stride ** 0, 0.25, 0.5, 0.75 and 1 (docs/benchmarks.md, "The score's span grows with the stride")."""
    return int(smoothing) if smoothing <= 1 else int(round(smoothing * math.sqrt(stride)))


@dataclass(repr=False, eq=False)  # __init__ from the fields (the base's first); scikit-learn's repr and identity
class LSTMAutoencoderDetector(AutoencoderBase):
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
    A collection of separate short recordings is :class:`anomaly.sequences.LSTMSequenceDetector`'s.

    ``overlap`` says how the estimates of one row from overlapping windows are joined: ``mean``
    (default) averages their squared errors; ``median`` takes the median of the estimates
    (reconstructions and/or predictions of the row), then its squared error (Orion's way). A
    collection of separate sequences has one estimate per step, so there both agree.

    ``context_columns`` are inputs only: the encoder reads them (e.g. SMAP's command flags), but
    the decoders rebuild and predict only the other columns (``target_columns_``), and errors,
    scores and events concern those alone. Not with ``conditional``.

    ``seasonal`` (:mod:`anomaly.seasonal`) subtracts each sensor's normal level at the row's time of
    day or week before scaling, so a day without its usual shape scores high though every window of
    it looks ordinary; with ``auto`` only where that profile predicts held-out normal days. The
    profiles are read on the clock of ``timezone`` (learned as ``timezone_``; default: the index's
    own zone), so a series stored in UTC keeps its local office hours across daylight-saving changes.

    ``trim`` > 0 fits twice, the second time from fresh weights without that fraction of training
    windows, those the first model rebuilt (and predicted) worst: for a normal period that may hold
    anomalies. Off by default: on the benchmarks it costs rarely seen normal patterns (docs/benchmarks.md).

    ``normalize_errors`` divides each sensor's error by its mean on the held-out normal windows
    (``error_ref_``) before the mean over sensors, so a sensor the model rebuilds poorly even in
    normal operation does not drown the others (one sensor: no effect on relative thresholds).

    Flagging (the defaults are the configuration ``anomaly bench`` measures): the score compared is
    the root of the squared error (``root_score``), EWMA-smoothed over ``smoothing_`` rows (``smoothing``
    times the square root of the fit's stride, see :func:`smoothing_span`). With
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

    FITTED_ON: ClassVar[str] = "series"
    ONNX_EXPORT: ClassVar[bool] = True
    # Input-only columns shape the network's input; the mixture's part ranges exist only as fitted.
    STRUCTURAL: ClassVar[tuple[str, ...]] = (*AutoencoderBase.STRUCTURAL, "context_columns", "combination")

    # The series' own hyperparameters (the shared ones are AutoencoderBase's), declared once (anomaly.params).
    stride: int | str = param(
        "auto",
        "stride",
        "step between windows, or auto: grows on long normal periods so a fit sees about 2,500 windows",
        flag="--stride",
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
        30,
        "int",
        "EWMA span of the score in points at stride 1, 0 = off; a fit at stride s smooths over SPAN * sqrt(s) points",
        low=0,
        flag="--smoothing",
        metavar="SPAN",
        group="flagging",
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
    combination: str = param(
        "mean",
        "choice",
        "join a row's reconstruction and prediction errors (composite, aer): mean of every estimate's error; "
        "mult or sum: AER's, each scaled by its range on held-out normal rows",
        choices=COMBINATIONS,
        flag="--combination",
        group="other",
    )
    seasonal: str = param(
        "auto",
        "choice",
        "subtract each sensor's normal level at its time of day or week before scaling: auto keeps such a "
        "profile only where it predicts held-out normal days (R^2 >= 0.5); day, week: always; off: never",
        choices=seasonal.MODES,
        flag="--seasonal",
        group="other",
    )
    trim: float = param(
        0.0,
        "float",
        "fit twice: the second time, from fresh weights, without this fraction of training windows, those "
        "the first fit rebuilt worst, so anomalies inside the normal period are not learned as normal",
        low=0,
        high=0.5,
        open_high=True,
        flag="--trim",
        group="other",
    )
    timezone: str | None = param(
        None,
        "zone",
        "the clock that time-of-day and time-of-week profiles are read on, an IANA name such as Europe/Berlin, "
        "so that office hours stay put across daylight-saving changes when timestamps are in UTC or carry "
        "offsets; timestamps without an offset are taken as that clock already",
        none=True,
        default_text="the timestamps' own zone",
        flag="--timezone",
        group="other",
        metavar="ZONE",
    )
    context_columns: tuple[str, ...] = param(
        (), "names", "input-only columns (read by the encoder, never rebuilt nor scored)", group="other", form=False
    )

    # -- parameters -------------------------------------------------------------------------
    def check_params(self) -> None:
        """Raise :class:`ConfigError` naming the first invalid hyperparameter (``fit`` and loading call it):
        the shared rules (:meth:`AutoencoderBase.check_params`), then the series' own."""
        super().check_params()
        stride = self.stride
        if stride != "auto" and stride > self.window:
            raise ConfigError(f"stride ({stride}) must not exceed window ({self.window}), or rows go unscored")
        if self.model_kind == "prediction" and stride != "auto" and stride > self.horizon:
            raise ConfigError(f"stride ({stride}) must not exceed horizon ({self.horizon}) for prediction, or rows go unscored")
        if self.context_columns and self.conditional:
            raise ConfigError("context_columns do not work with a conditional decoder (it is fed its own targets)")
        if self.combination != "mean" and self.model_kind not in ("composite", "aer"):
            raise ConfigError(
                f"combination {self.combination!r} joins reconstruction and prediction errors: "
                f"model_kind {self.model_kind!r} has only one of them (use composite or aer)"
            )
        if self.combination != "mean" and stride != "auto" and stride > self.horizon:
            raise ConfigError(
                f"stride ({stride}) must not exceed horizon ({self.horizon}) with combination {self.combination!r}, "
                "or rows go without a regression error"
            )
        if self.combination != "mean" and self.overlap == "median":
            raise ConfigError(f"combination {self.combination!r} joins the mean errors of each part: use overlap 'mean'")

    def _context(self) -> tuple[str, ...]:
        return tuple(self.context_columns)

    def _window_batch(self, values: np.ndarray, targets_of: np.ndarray, starts: np.ndarray):
        """One training batch of windows at ``starts``: ``(inputs, targets)`` (targets from ``targets_of``)."""
        x = gather(values, starts, self.window)
        xt = x if targets_of is values else gather(targets_of, starts, self.window)
        targets = [
            self._reconstruction_target(xt) if name == "reconstruction" else gather(targets_of, *self._estimated(name, starts))
            for name in self._outputs()
        ]
        return self._targets_to_batch(x, targets)

    def _estimated(self, name: str, starts: np.ndarray) -> tuple[np.ndarray, int]:
        """The rows the decoder ``name`` estimates for the windows at ``starts``: each block's first row, its length."""
        if name == "reconstruction":
            return starts, self.window
        if name == "prediction":
            return future_starts(starts, self.window), int(self.horizon)
        return starts - self._lead(), self._lead()  # backward (aer): the rows just before the window

    # -- fitting ----------------------------------------------------------------------------
    def fit(self, X: pd.DataFrame, y=None, *, on_epoch=None) -> LSTMAutoencoderDetector:
        """Learn scaling, the autoencoder and thresholds from ``X``, a frame of normal operation.

        ``on_epoch(epoch, logs)``, if given, is called after every epoch with the 0-based epoch and a
        dict of plain floats (``loss``, ``val_loss``): a progress hook for a UI, free of Keras types.
        """
        self.check_params()
        self.reading_ = None  # how X was read is the caller's; the CLI saves it (save(reading=...))
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
        self.interval_ = detect_interval(X.index)
        X = on_grid(X, self.interval_)
        self.timezone_ = self.timezone or (zone_name(X.index.tz) if X.index.tz is not None else None)
        self.seasonal_ = seasonal.fit_profiles(X[self.target_columns_], self.seasonal, self.interval_, self.timezone_)
        if self.seasonal_:
            log.info("seasonal profile removed from %s", seasonal.describe(self.seasonal_))
        self._fit_scaler(X)
        self._centre_profiled(X)
        values = self._scale(X)  # less the profiles (AutoencoderBase._levels)
        targets_of = self._target_values(values)
        self.stride_ = self.resolve_stride(len(X))
        self.smoothing_ = smoothing_span(self.smoothing, self.stride_)
        lead = self._lead()  # rows before each window that aer predicts: spans start there
        finite = np.isfinite(values).all(axis=1)
        starts = span_starts(finite, lead + self.window, self._horizon(), self.stride_) + lead
        train, val = self._split(starts, finite)

        def fit_on(train: np.ndarray) -> None:
            self._train(
                self._build(),
                len(train),
                len(val),
                lambda idx: self._window_batch(values, targets_of, train[idx]),
                lambda idx: self._window_batch(values, targets_of, val[idx]),
                on_epoch=on_epoch,
            )

        fit_on(train)
        if self.trim > 0:
            kept = self._untrimmed(values, train)
            if len(kept) < len(train):
                log.info(
                    "trim %g: refitting without the %d of %d training windows rebuilt worst",
                    self.trim,
                    len(train) - len(kept),
                    len(train),
                )
                fit_on(kept)
            else:
                log.info("trim %g: %d training windows are too few to drop any; fitted once", self.trim, len(train))
            train = kept  # the windows the final model learned from

        # Thresholds come from windows the model did not train on (all of them if none were held out).
        parts = self._accumulate(values, val if len(val) else train)[0]
        # AER's mixture (combination mult/sum): each part's range on the same held-out rows
        self.part_ranges_ = mixture.part_ranges(parts) if self.combination != "mean" else None
        self._learn_normal(self._joined(parts))
        self.fingerprint_ = fingerprint(X)
        return self

    def _untrimmed(self, values: np.ndarray, train: np.ndarray) -> np.ndarray:
        """The training window starts less the ``trim`` fraction (keeping at least
        :data:`MIN_TRAIN_WINDOWS`) whose rows the fitted model rebuilds and predicts worst: a window's
        error is the sum of the row errors (every part's, all targets) over every row it reads or
        estimates, so a prediction's target rows count too."""
        n_drop = min(int(len(train) * self.trim), max(0, len(train) - MIN_TRAIN_WINDOWS))
        if n_drop == 0:
            return train
        parts = self._accumulate(values, train)[0]  # unscaled parts: a mixture's ranges are not learned yet
        row_errors = sum(np.nan_to_num(part).sum(axis=1) for part in parts.values())
        cumulative = np.concatenate([[0.0], np.cumsum(row_errors)])
        window_error = cumulative[train + self.window + self._horizon()] - cumulative[train - self._lead()]
        worst = np.argpartition(window_error, len(train) - n_drop)[len(train) - n_drop :]
        return np.delete(train, worst)

    def _centre_profiled(self, X: pd.DataFrame) -> None:
        """Centre each profiled sensor on the mean of its residual (the value less its profile), keeping
        the spread of its raw values: a residual that is mostly noise is not blown up to unit variance,
        where it would drown the other sensors' errors (SMD 0.682 -> 0.685, realAdExchange 0.614 ->
        0.629 against the residual's own spread; docs/benchmarks.md)."""
        values = X.to_numpy(dtype=float)
        complete = np.isfinite(values).all(axis=1)  # the rows the scaler was fitted on
        levels = self._levels(X.index[complete], self.columns_)
        for j, column in enumerate(self.columns_):
            if column in self.seasonal_:
                self.scaler_.mean_[j] = (values[complete, j] - levels[:, j]).mean()

    def resolve_stride(self, n_rows: int) -> int:
        """The stride in force: ``stride``, or with ``"auto"`` the smallest that gives a fit on ``n_rows``
        about :data:`MAX_TRAIN_WINDOWS` windows (at most a quarter window; a prediction's horizon)."""
        if self.stride != "auto":
            return int(self.stride)
        stride = min(max(1, math.ceil(n_rows / MAX_TRAIN_WINDOWS)), max(1, self.window // 4))
        # A prediction, and a mixture's regression part, must reach every row: windows at most a horizon apart.
        return min(stride, self.horizon) if self.model_kind == "prediction" or self.combination != "mean" else stride

    def _split(self, starts: np.ndarray, finite: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Training and held-out window starts: the last windows are held out, one window apart.
        ``finite``: which rows have every value (a window spans no gap)."""
        n_val = int(round(len(starts) * self.validation_fraction))
        if n_val:
            val = starts[len(starts) - n_val :]
            train = starts[starts + self.window + self._horizon() <= val[0] - self._lead()]
        else:
            val, train = starts[:0], starts
        if len(train) < MIN_TRAIN_WINDOWS or (self.validation_fraction > 0 and len(val) < MIN_VAL_WINDOWS):
            longest = max((stop - start for start, stop in segments(finite)), default=0)
            gaps = f"; its longest stretch without a gap is {longest} rows" if longest < len(finite) else ""
            raise DataError(
                f"too few normal windows to fit: {len(train)} for training and {len(val)} held out from {len(finite)} rows"
                f"{gaps} (need at least {MIN_TRAIN_WINDOWS} and {MIN_VAL_WINDOWS}); use a longer normal period or a smaller window"
            )
        return train, val

    # -- the scoring seam: the stages of score(), shared with incremental scoring and the bench --
    # prepare (checked, scaled frame and window starts) -> forward (per-row, per-sensor errors) ->
    # sensor_mean / combine (one raw or smoothed score per row) -> flagging (anomaly.flagging).
    def prepare(self, X: pd.DataFrame, span: int | None = None) -> tuple[pd.DataFrame, np.ndarray, np.ndarray]:
        """Checked data, its scaled values and the window starts of its complete spans: by default each window
        with the rows its decoders predict around it (horizon after; for aer, before too), else ``span`` rows."""
        self._check_fitted()
        X = _check_frame(X)
        missing = [c for c in self.columns_ if c not in X.columns]
        if missing:
            raise DataError(
                f"data lacks the model's column(s) {', '.join(map(repr, missing))} "
                f"(model columns: {', '.join(self.columns_)}; data columns: {', '.join(map(str, X.columns))})"
            )
        X = on_grid(X[self.columns_], self.interval_)
        values = self._scale(X)
        starts = self._window_starts(np.isfinite(values).all(axis=1), span)
        if len(starts) == 0:
            verb = "score" if span is None else "embed"  # only embed asks for bare windows
            lead, span = self._span(span)
            around = "the horizon on each side" if lead else "the horizon"
            need = f"one window ({self.window} rows)" if span == self.window else f"one window plus {around} ({span} rows)"
            # fewer rows than a window: more may come (TooFewRowsError); a long series broken by gaps is bad data
            error = TooFewRowsError if len(X) < span else DataError
            raise error(
                f"no complete window to {verb}: the series has {len(X)} rows and no stretch without gaps of at least {need}"
            )
        return X, values, starts

    def _window_starts(self, finite_rows: np.ndarray, span: int | None = None) -> np.ndarray:
        """Starts of the windows scored over rows ``finite_rows``: each with the rows its decoders estimate
        around it (by default), else ``span`` rows, without a gap."""
        lead, span = self._span(span)
        return window_starts(finite_rows, span, self.stride_) + lead

    def _span(self, span: int | None = None) -> tuple[int, int]:
        """``(lead, span)`` of a scored window: by default the rows its decoders estimate before it and
        the whole stretch they need; with ``span`` given, that many rows and no lead."""
        return (self._lead(), self._lead() + self.window + self._horizon()) if span is None else (0, span)

    def reach(self) -> tuple[int, int]:
        """``(before, after)``: a window starting at row ``s`` estimates rows ``s - before`` to
        ``s + after - 1`` at most (a reconstruction: ``(0, window)``); incremental scoring's bounds."""
        return self._lead(), self.window + self._horizon()

    def estimated_rows(self, finite_rows: np.ndarray) -> np.ndarray:
        """Which rows get a score when rows ``finite_rows`` (no NaN) are scored: those some decoder of
        a complete window estimates (not, for ``prediction``, the first ``window`` rows of a stretch)."""
        starts = self._window_starts(np.asarray(finite_rows, dtype=bool))
        estimated = np.zeros(len(finite_rows), dtype=bool)
        for name in self._outputs():
            at, length = self._estimated(name, starts)
            estimated |= coverage(len(finite_rows), at, length) > 0
        return estimated

    def forward(self, values: np.ndarray, starts: np.ndarray, reconstruct: bool = False):
        """Per-row, per-target squared error and mean estimate over every estimate of the row.

        Reconstructions count for the rows of their window, predictions for the rows after it (and
        aer's backward predictions for the rows before it).
        ``overlap="mean"``: the mean of the estimates' squared errors; ``"median"``: the squared
        error of the median estimate (which is then the estimate returned). ``combination`` mult or
        sum: the reconstruction and regression errors joined AER's way (:mod:`anomaly.mixture`).
        """
        parts, estimate = self._accumulate(values, starts, reconstruct)
        return self._joined(parts), estimate

    def _joined(self, parts: dict[str, np.ndarray]) -> np.ndarray:
        """The per-row, per-target errors from :meth:`_accumulate`'s parts under ``combination``."""
        return parts["all"] if self.combination == "mean" else mixture.join(parts, self.part_ranges_, self.combination)

    def _accumulate(self, values: np.ndarray, starts: np.ndarray, reconstruct: bool = False):
        """Each part's per-row, per-target squared errors (``{"all": ...}``, or with a ``combination``
        the reconstruction and regression parts apart) and the rows' estimates if asked."""
        targets_of = self._target_values(values)
        n_targets = targets_of.shape[1]
        median = self.overlap == "median"
        part_of = (lambda name: "all") if self.combination == "mean" else mixture.part_of
        errors = {} if median else {part_of(name): OverlapMean(len(values), n_targets) for name in self._outputs()}
        recon = (
            OverlapMedian(len(values), n_targets) if median else (OverlapMean(len(values), n_targets) if reconstruct else None)
        )
        predict = self._predictor().plan(len(starts))  # XLA only where it pays (model.XLA_MIN_WINDOWS)
        for batch in batched(starts, predict.batch_size):  # model.SCORE_BATCH, chosen by bench/perf.py
            x = gather(values, batch, self.window)
            outs = predict(x)
            for name, y in zip(self._outputs(), outs if isinstance(outs, list) else [outs]):
                at, length = self._estimated(name, batch)
                if name == "reconstruction":
                    if self.reverse:
                        y = reverse_steps(y)
                    target = None if median else (x if targets_of is values else gather(targets_of, batch, self.window))
                else:
                    target = None if median else gather(targets_of, at, length)
                if not median:
                    errors[part_of(name)].add(at, (y - target) ** 2)
                if recon is not None:
                    recon.add(at, y)
        if median:
            estimate = recon.median()
            return {"all": (estimate - targets_of) ** 2}, (estimate if reconstruct else None)
        return {part: acc.mean(consume=True) for part, acc in errors.items()}, (
            recon.mean(consume=True) if recon is not None else None
        )

    def row_errors(self, values: np.ndarray, starts: np.ndarray) -> np.ndarray:
        """Per-row, per-target squared errors of the windows at ``starts`` (:meth:`forward` without estimates)."""
        return self.forward(values, starts)[0]

    def combine(self, row_errors: np.ndarray) -> np.ndarray:
        """One score per row: mean over sensors, optionally EWMA-smoothed over ``smoothing_`` rows."""
        score = self.sensor_mean(row_errors)
        if self.smoothing_ > 1:
            score = pd.Series(score).ewm(span=self.smoothing_, ignore_na=True).mean().to_numpy(copy=True)
            score[~np.isfinite(row_errors).all(axis=1)] = np.nan
        return score

    # -- scoring and flagging -----------------------------------------------------------------
    def score(
        self, X: pd.DataFrame, *, threshold: float | None = None, quantile: float | None = None, reconstruct: bool = False
    ) -> pd.DataFrame:
        """Per-timestamp ``score, threshold, is_anomaly`` and ``error_<sensor>`` columns.

        Rows inside gaps (covered by no window) have NaN scores and are never anomalous; timestamps
        missing from ``X`` (rows dropped with ``dropna``, say) come back as such rows, on the model's
        sampling interval. With
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
        limit = self.threshold_for(threshold if fixed is None else fixed, quantile)
        out = self._fixed_flags(self.combine(row_errors), limit, index)
        if self.has_postprocessing() and threshold is None and quantile is None:
            # anomaly.postprocess owns the rest: root, EWMA, local threshold, pruning, padding, merging.
            from anomaly.postprocess import flag_scores, normal_cap

            raw = self.sensor_mean(row_errors)
            floor = None if self.local_rule is not None else (np.sqrt(limit) if self.root_score else limit)
            out["score"], out["threshold"], out["is_anomaly"] = flag_scores(
                raw,
                rule=self.local_rule,
                smoothing=self.smoothing_,
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
            smoothing=self.smoothing_,
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
                + (f" (scores smoothed over {self.smoothing_} rows)" if self.smoothing_ > 1 else "")
                + (f", and the {self.event_padding} rows after each" if self.event_padding else "")
            )
        t = self.thresholds_
        if self.local_rule is None:
            value = t["values"][t["rule"]]
            if not self.root_score:
                return f"flags rows over one fixed threshold ({t['rule']} = {value:.6g})"
            # the rule compares the root of the score, as the scores file holds it: say the value compared
            return f"flags rows over one fixed threshold, {np.sqrt(value):.6g} (the root of {t['rule']} = {value:.6g})" + (
                f" (scores smoothed over {self.smoothing_} rows)" if self.smoothing_ > 1 else ""
            )
        return f"flags rows by the local rule {self.local_rule}, relative to each scored batch"

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

    def events(self, scores: pd.DataFrame, threshold: float | None = None) -> pd.DataFrame:
        """Events from a frame returned by :meth:`score`, optionally at one fixed ``threshold``.

        ``threshold`` is compared with the frame's own ``score`` column, so it is in that column's
        units: the plain score's for a frame from ``score(X, threshold=...)``, but the smoothed root
        of it for a frame scored under a rule with ``root_score`` (the default). To try a fixed
        threshold on the plain score of any model, score with it: ``detect(X, threshold=t)``.
        """
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

        Every kind has the same encoder; windows need ``window`` complete rows (no horizon). Every
        window, one per row, whatever the stride the model was fitted and scores at.
        """
        X, values, _ = self.prepare(X, span=self.window)
        starts = window_starts(np.isfinite(values).all(axis=1), self.window, 1)
        vectors = np.concatenate([self._encoder()(gather(values, b, self.window)) for b in batched(starts, 1024)])
        out = pd.DataFrame(vectors, columns=[f"z{i}" for i in range(vectors.shape[1])])
        out.insert(0, "end", X.index[starts + self.window - 1])
        out.insert(0, "start", X.index[starts])
        return out

    def _profiles(self) -> dict:
        """The seasonal profiles learned at fit (``seasonal_``), which scaling subtracts."""
        return self.seasonal_

    # -- persistence ------------------------------------------------------------------------
    def fitted_state(self) -> dict:
        """The learned state as JSON values, with the stride in force."""
        return {
            **super().fitted_state(),
            "stride": int(self.stride_),
            "smoothing_span": int(self.smoothing_),
            "part_ranges": self.part_ranges_,
            "seasonal": {column: profile.to_json() for column, profile in self.seasonal_.items()},
        }

    def restore(self, state: dict, model) -> LSTMAutoencoderDetector:
        """Set the learned state from :meth:`fitted_state`'s JSON and the loaded ``model``; returns ``self``."""
        super().restore(state, model)
        self.stride_ = int(state.get("stride", self.stride if self.stride != "auto" else 1))
        # Saved before format 4 the span was ``smoothing`` itself, whatever the stride.
        self.smoothing_ = int(state.get("smoothing_span", self.smoothing))
        self.part_ranges_ = state.get("part_ranges")  # None: errors joined by their mean (combination "mean")
        self.seasonal_ = {column: seasonal.Profile.from_json(p) for column, p in state.get("seasonal", {}).items()}
        if "seasonal" not in state:  # saved before seasonal profiles: its data were scaled as they came
            self.seasonal = "off"
        return self

    def set_params(self, **params) -> LSTMAutoencoderDetector:
        """Change hyperparameters (:meth:`AutoencoderBase.set_params`). On a fitted detector a new
        ``smoothing`` takes effect at once, as the other flagging settings do (for :meth:`reflag`):
        the span in force becomes :func:`smoothing_span` of it at the fitted stride."""
        super().set_params(**params)
        if "smoothing" in params and hasattr(self, "stride_"):
            self.smoothing_ = smoothing_span(self.smoothing, self.stride_)
        return self

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

    # -- scikit-learn / PyOD conventions ----------------------------------------------------
    def decision_function(self, X: pd.DataFrame) -> np.ndarray:
        """The anomaly score of every row of ``X`` (higher: more anomalous), NaN where no window covers it.

        ``score(X)["score"]`` as a float array aligned with ``X``'s rows, for tools that expect an
        estimator's scores (PyOD's sign; scikit-learn's own outlier detectors use the opposite one).
        """
        return self._per_row(X, "score").to_numpy(dtype=np.float64)

    def predict(self, X: pd.DataFrame) -> np.ndarray:
        """1 for every anomalous row of ``X``, else 0: ``score(X)["is_anomaly"]`` as ints (PyOD's labels)."""
        return self._per_row(X, "is_anomaly").astype(bool).to_numpy(dtype=np.int64)

    def _per_row(self, X: pd.DataFrame, column: str) -> pd.Series:
        """``score(X)[column]`` at ``X``'s own rows (score adds the rows missing from its grid)."""
        out = self.score(X)[column]
        return out.reindex(X.index) if len(out) != len(X) else out


def _check_frame(X) -> pd.DataFrame:
    """``X`` as the detector reads it: float columns named by strings (as saved with the model), an
    infinite value missing (as the file loader reads it), or a :class:`DataError` naming what is wrong."""
    if not isinstance(X, pd.DataFrame):
        raise DataError(f"expected a pandas DataFrame indexed by timestamp, not {type(X).__name__}")
    if not isinstance(X.index, pd.DatetimeIndex):
        raise DataError("expected a frame indexed by timestamp (a DatetimeIndex); use anomaly.load_series()")
    if X.shape[1] == 0:
        raise DataError("the frame has no sensor column")
    names = list(map(str, X.columns))
    if len(set(names)) < len(names):
        twins = [repr(c) for c in X.columns if names.count(str(c)) > 1]
        raise DataError(f"column names repeat (as text): {', '.join(twins)}")
    non_numeric = [c for c in X.columns if not pd.api.types.is_numeric_dtype(X[c])]
    if non_numeric:
        raise DataError(f"non-numeric column(s) {', '.join(map(repr, non_numeric))}")
    if not X.index.is_monotonic_increasing or X.index.has_duplicates:
        raise DataError("the frame's timestamps must be sorted and unique; use anomaly.load_series()")
    return infinite_as_missing(X.set_axis(names, axis=1).astype(np.float64))  # bool and integer sensors too


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
