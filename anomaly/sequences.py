"""``LSTMSequenceDetector``: fit on a collection of separate normal recordings, score each step of new ones.

Many short recordings of different lengths (one per machine cycle, per batch, per flight) are one
sample each, not one long series: each is padded at the end to ``window`` steps, a Masking layer
makes the encoder skip the padding, and padded steps weigh nothing in the loss, so padding neither
trains nor scores. The model, scaling, thresholds and saving are the series detector's
(:class:`anomaly.base.AutoencoderBase`); a step is flagged when its score exceeds the fixed
threshold learned from the held-out recordings.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import ClassVar

import numpy as np
import pandas as pd

from anomaly.base import AutoencoderBase
from anomaly.errors import ConfigError, DataError
from anomaly.io import detect_interval, zone_name
from anomaly.windows import OverlapMean, batched, pad_sequences, reverse_steps, step_mask

MIN_TRAIN_SEQUENCES = 8
MIN_VAL_SEQUENCES = 2
# Fill value of padded steps; the model's Masking layer skips steps whose every (scaled) feature
# equals it. A real step equal to it everywhere is refused.
PAD_VALUE = -1.0e4


@dataclass(repr=False, eq=False)  # the base's __init__ and fields; scikit-learn's repr and identity
class LSTMSequenceDetector(AutoencoderBase):
    """LSTM autoencoder for collections of separate recordings, each one sample of 2 to ``window`` steps.

    ``fit(sequences)`` takes a list of normal recordings: frames with the same numeric columns (any
    index) or 2-D arrays ``(steps, sensors)`` (columns named ``x0, x1, ...``). For ``prediction``
    and ``composite`` the last ``horizon`` steps of a recording are predicted from the steps before
    them, so a recording has ``horizon + 2`` to ``window + horizon`` steps. The last
    ``validation_fraction`` of the recordings are held out (early stopping, thresholds).
    ``score(sequences)`` returns one score frame per recording; ``embed(sequences)`` the encoder's
    vector of each. Every hyperparameter is :class:`anomaly.base.AutoencoderBase`'s.
    """

    FITTED_ON: ClassVar[str] = "sequences"
    ONNX_EXPORT: ClassVar[bool] = False  # the export covers the series model's fixed-length windows

    def check_params(self) -> None:
        """The shared rules, and no ``aer``: a recording has no rows before its first step to predict."""
        super().check_params()
        if self.model_kind == "aer":
            raise ConfigError("model_kind 'aer' predicts rows before each window: it needs one series (fit), not recordings")

    # -- fitting ----------------------------------------------------------------------------
    def fit(self, sequences, y=None, *, on_epoch=None) -> LSTMSequenceDetector:
        """Learn scaling, the autoencoder and thresholds from a list of normal recordings.

        ``on_epoch(epoch, logs)``: as in :meth:`anomaly.detector.LSTMAutoencoderDetector.fit`.
        """
        self.check_params()
        self.reading_ = None  # how X was read is the caller's; the CLI saves it (save(reading=...))
        scaled, indexes = self._values(sequences, fitting=True)
        timed = [ix for ix in indexes if isinstance(ix, pd.DatetimeIndex) and len(ix) > 2]
        self.interval_ = detect_interval(timed[0]) if timed else pd.Timedelta(seconds=1)  # arrays: 1 s per step
        self.timezone_ = zone_name(timed[0].tz) if timed and timed[0].tz is not None else None
        inputs, lengths, futures = self._pack(scaled, PAD_VALUE)
        n_val = int(round(len(scaled) * self.validation_fraction))
        n_train = len(scaled) - n_val
        if n_train < MIN_TRAIN_SEQUENCES or (self.validation_fraction > 0 and n_val < MIN_VAL_SEQUENCES):
            raise DataError(
                f"too few sequences to fit: {n_train} for training and {n_val} held out "
                f"(need at least {MIN_TRAIN_SEQUENCES} and {MIN_VAL_SEQUENCES})"
            )
        train, val = np.arange(n_train), np.arange(n_train, len(scaled))

        self._train(
            self._build(pad_value=PAD_VALUE),
            len(train),
            len(val),
            lambda idx: self._batch(inputs, lengths, futures, train[idx]),
            lambda idx: self._batch(inputs, lengths, futures, val[idx]),
            on_epoch=on_epoch,
        )

        held = val if len(val) else train
        _, row_errors, _ = self._forward(inputs[held], lengths[held], futures[held] if futures is not None else None)
        self._learn_normal(row_errors)
        self.fingerprint_ = _fingerprint(self.columns_, scaled, indexes)
        return self

    # -- scoring ----------------------------------------------------------------------------
    def score(
        self, sequences, *, threshold: float | None = None, quantile: float | None = None, reconstruct: bool = False
    ) -> list[pd.DataFrame]:
        """One score frame per recording (``score, threshold, is_anomaly, error_<sensor>``), with its own index.

        A step's score is its mean squared error over sensors, flagged above the fitted threshold
        (or ``threshold``, or the ``quantile`` of the held-out normal scores). Steps estimated by
        nothing (for ``prediction``, the steps before the last ``horizon``) score NaN. With
        ``reconstruct=True`` each step's estimate in original units is added as ``recon_<sensor>``.
        """
        self._check_fitted()
        scaled, indexes = self._values(sequences, fitting=False)
        inputs, lengths, futures = self._pack(scaled, self._pad_value())
        firsts, row_errors, recon = self._forward(inputs, lengths, futures, reconstruct)
        limit = self.threshold_for(threshold, quantile)
        frames = []
        for first, v, index in zip(firsts, scaled, indexes):
            rows = slice(int(first), int(first) + len(v))
            errors = row_errors[rows]
            flags = self._fixed_flags(self.combine(errors), limit, index)
            frames.append(self._with_sensor_columns(flags, errors, None if recon is None else recon[rows]))
        return frames

    def embed(self, sequences) -> pd.DataFrame:
        """The encoder's vector of every recording (padding skipped): ``sequence, steps, z0..``."""
        self._check_fitted()
        scaled, _ = self._values(sequences, fitting=False)
        inputs, _, _ = self._pack(scaled, self._pad_value())
        vectors = np.concatenate([self._encoder()(inputs[b]) for b in batched(np.arange(len(inputs)), 1024)])
        out = pd.DataFrame(vectors, columns=[f"z{i}" for i in range(vectors.shape[1])])
        out.insert(0, "steps", [len(v) for v in scaled])
        out.insert(0, "sequence", np.arange(len(scaled)))
        return out

    # -- recordings to batches ----------------------------------------------------------------
    def _pad_value(self) -> float:
        """The padding value of this model: its Masking layer's (``PAD_VALUE`` when it was fitted)."""
        from anomaly.model import MASK_LAYER

        return float(self.model_.get_layer(MASK_LAYER).mask_value)

    def _values(self, sequences, fitting: bool) -> tuple[list[np.ndarray], list[pd.Index]]:
        """Scaled ``(steps, n_features)`` arrays of each recording, and each one's index."""
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

    def _batch(self, inputs: np.ndarray, lengths: np.ndarray, futures, idx: np.ndarray):
        """One training batch of recordings: ``(inputs, targets, per-step weights)``; padding weighs 0."""
        x, n = inputs[idx], lengths[idx]
        targets, weights = [], []
        for name in self._outputs():
            if name == "reconstruction":
                targets.append(self._reconstruction_target(x, n))
                weights.append(step_mask(n, self.window))
            else:
                targets.append(futures[idx])
                weights.append(np.ones(futures[idx].shape[:2], dtype=np.float32))
        model_inputs, y = self._targets_to_batch(x, targets)
        return model_inputs, y, (weights[0] if len(weights) == 1 else tuple(weights))

    def _forward(self, inputs, lengths, futures, reconstruct: bool = False):
        """Per-step errors (and estimates) of every recording, as one array of all their rows in order,
        with each recording's first row in it."""
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


def _check_sequences(sequences, columns: list[str] | None) -> list[pd.DataFrame]:
    """Each recording as a numeric frame with the expected columns and no missing value."""
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
            # an array's columns are the model's, in order (their count was checked just above)
            names = list(columns) if columns is not None else [f"x{j}" for j in range(arr.shape[1])]
            frame = pd.DataFrame(arr, columns=names)
        if frame.shape[1] == 0:
            raise DataError(f"sequence {i}: no sensor column")
        frame = frame.rename(columns=str)  # names as saved with the model, for every recording alike
        expected = columns if columns is not None else (list(frames[0].columns) if frames else None)
        if expected is not None:
            missing = [c for c in expected if c not in frame.columns]
            if missing:
                raise DataError(
                    f"sequence {i}: lacks column(s) {', '.join(map(repr, missing))} (expected: {', '.join(expected)})"
                )
            frame = frame[expected]
        bad = ~np.isfinite(frame.to_numpy(dtype=np.float64))
        if bad.any():
            row, col = (int(a[0]) for a in np.nonzero(bad))
            raise DataError(f"sequence {i} row {row} column '{frame.columns[col]}': missing or infinite value")
        frames.append(frame)
    return frames


def _fingerprint(columns: list[str], scaled: list[np.ndarray], indexes: list[pd.Index]) -> dict:
    """A stable digest of a collection of recordings (columns, lengths, scaled values)."""
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
