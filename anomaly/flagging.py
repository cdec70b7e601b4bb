"""Causal flagging: a row is judged against the scores *before* it, never after.

The product's default rule (``local_rule="trailing"``). Each row's score (root of the squared
reconstruction error, EWMA-smoothed) is compared with a threshold made only from the past:

- ``mean + k * std`` of the last ``trailing`` **unflagged** scores (a flagged row never raises
  the bar for the rows after it, so a long anomaly stays flagged: the trailing window keeps the
  normal scores from before it), seeded at the start with the model's scores on its held-out
  normal windows;
- raised to ``(1 + prune)`` times the largest of those scores when ``prune`` > 0 (telemanom's
  pruning, done causally: a row must stand clearly above everything normal seen lately);
- lowered to the ``cap`` (a multiple of the largest held-out normal score) when that is lower:
  a score that far above normal is anomalous whatever happened lately;
- once a row is flagged, the next ``pad`` rows are flagged too (padding forward only).

Everything a row's flag depends on is carried in a small :class:`FlagState` (EWMA sums, the
trailing scores, the padding still due), so scoring a series in one call, in chunks, or
incrementally into a database gives the same flags: :func:`flag` of two chunks, the second
started from the first's state, equals :func:`flag` of the whole. Why hand-written: no library
offers a trailing threshold that excludes its own exceedances and resumes from saved state.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

import numpy as np
import pandas as pd
from scipy.signal import lfilter

TRAILING = "trailing"  # the detector's name for this rule (local_rule="trailing")
CHUNK = 4096  # rows judged per vectorised step (the work per flagged run is at most this + trailing)
BLOCK = 1 << 18  # rows transformed and flagged at a time: temporaries stay small whatever the series' length


@dataclass(frozen=True)
class TrailingRule:
    """The hyperparameters of causal flagging (see the module doc); scores in the units compared."""

    k: float = 4.0
    trailing: int = 2000
    cap: float | None = None
    prune: float = 0.0
    pad: int = 0
    smoothing: int = 0
    root: bool = False
    exclude: bool = True  # flagged rows stay out of the trail (False: every row enters it)


@dataclass
class FlagState:
    """What the flag of the next row depends on: EWMA sums, trailing unflagged scores, padding due."""

    ewm_num: float = 0.0
    ewm_den: float = 0.0
    trail: np.ndarray = field(default_factory=lambda: np.empty(0))
    pad_left: int = 0

    def to_dict(self) -> dict:
        """JSON-ready (Python floats round-trip exactly through JSON)."""
        return {
            "ewm_num": float(self.ewm_num),
            "ewm_den": float(self.ewm_den),
            "trail": [float(v) for v in self.trail],
            "pad_left": int(self.pad_left),
        }

    @classmethod
    def from_dict(cls, d: dict) -> FlagState:
        return cls(float(d["ewm_num"]), float(d["ewm_den"]), np.asarray(d["trail"], dtype=np.float64), int(d["pad_left"]))

    def copy(self) -> FlagState:
        return FlagState(self.ewm_num, self.ewm_den, self.trail.copy(), self.pad_left)


@dataclass
class FlagResult:
    score: np.ndarray  # the score compared (root, smoothed); NaN where the raw score is NaN
    threshold: np.ndarray  # the threshold in force at each row (NaN where the score is NaN)
    flags: np.ndarray  # bool
    state: FlagState  # after the last row


def transform(raw: np.ndarray, rule: TrailingRule, num: float = 0.0, den: float = 0.0) -> tuple[np.ndarray, float, float]:
    """Root (optional) and EWMA of ``span=rule.smoothing`` (pandas' ``adjust=True, ignore_na=True``),
    resumed from the sums ``num, den``; returns the smoothed score and the new sums. NaN stays NaN."""
    x = np.asarray(raw, dtype=np.float64)
    if rule.root:
        with np.errstate(invalid="ignore"):
            x = np.sqrt(np.maximum(x, 0.0), where=np.isfinite(x), out=np.full(len(x), np.nan))
    if rule.smoothing <= 1:
        return x.copy(), num, den
    finite = np.isfinite(x)
    v = x[finite]
    if len(v) == 0:
        return x.copy(), num, den
    decay = 1.0 - 2.0 / (rule.smoothing + 1.0)
    # y[n] = v[n] + decay * y[n-1]: the weighted sums of an adjusted EWMA, from scipy's IIR filter
    nums, _ = lfilter([1.0], [1.0, -decay], v, zi=[decay * num])
    dens, _ = lfilter([1.0], [1.0, -decay], np.ones(len(v)), zi=[decay * den])
    out = np.full(len(x), np.nan)
    out[finite] = nums / dens
    return out, float(nums[-1]), float(dens[-1])


def seed(normal_raw: np.ndarray, rule: TrailingRule) -> FlagState:
    """The state scoring starts from: as if the scored series followed the held-out normal scores.

    The trail holds their last ``trailing`` transformed values and the EWMA carries on from them,
    so the first rows of a series are smoothed like the rest instead of judged raw."""
    smooth, num, den = transform(normal_raw, rule)
    smooth = smooth[np.isfinite(smooth)]
    return FlagState(num, den, smooth[len(smooth) - min(len(smooth), rule.trailing) :].copy())


def normal_cap(normal_raw: np.ndarray, factor: float, rule: TrailingRule) -> float | None:
    """``factor`` times the largest transformed held-out normal score (None when 0 or none)."""
    smooth, _, _ = transform(normal_raw, rule)
    smooth = smooth[np.isfinite(smooth)]
    if not factor or len(smooth) == 0:
        return None
    return float(factor) * float(smooth.max())


def make_rule(
    normal_raw: np.ndarray,
    *,
    k: float,
    trailing: int,
    cap_factor: float,
    prune: float,
    pad: int,
    smoothing: int,
    root: bool,
    exclude: bool = True,
) -> TrailingRule:
    """The rule of a fitted model: its cap set from the held-out normal scores ``normal_raw``."""
    base = TrailingRule(
        k=float(k),
        trailing=int(trailing),
        prune=float(prune),
        pad=int(pad),
        smoothing=int(smoothing),
        root=bool(root),
        exclude=bool(exclude),
    )
    return replace(base, cap=normal_cap(normal_raw, cap_factor, base))


def _limit(trail: np.ndarray, rule: TrailingRule) -> float:
    """The threshold for the next row given the trailing unflagged scores."""
    if len(trail) >= 2:
        limit = float(trail.mean() + rule.k * trail.std())
        if rule.prune > 0:
            limit = max(limit, (1.0 + rule.prune) * float(trail.max()))
    else:
        limit = np.inf
    return min(limit, rule.cap) if rule.cap is not None else limit


def _trailing_limits(trail: np.ndarray, values: np.ndarray, rule: TrailingRule) -> np.ndarray:
    """Threshold of each of ``values`` if none of them were flagged: each judged against the last
    ``trailing`` of ``trail + values`` before it (pandas' rolling windows: compensated sums, so a
    burst of large values does not cost the next windows their precision)."""
    seq = pd.Series(np.concatenate([[np.nan], trail, values]))  # NaN: nothing before the first row
    roll = seq.rolling(rule.trailing, min_periods=1)
    before = slice(len(trail), len(trail) + len(values))  # the window ending just before each value
    limit = roll.mean().to_numpy()[before] + rule.k * roll.std(ddof=0).to_numpy()[before]
    if rule.prune > 0:
        limit = np.maximum(limit, (1.0 + rule.prune) * roll.max().to_numpy()[before])
    limit[roll.count().to_numpy()[before] < 2] = np.inf
    return np.minimum(limit, rule.cap) if rule.cap is not None else limit


def _flag_finite(s: np.ndarray, state: FlagState, rule: TrailingRule) -> tuple[np.ndarray, np.ndarray, np.ndarray, int]:
    """Thresholds and flags of the finite scores ``s`` from ``state``; the new trail and padding due.

    Vectorised: between flagged runs every row is assumed unflagged, and the thresholds follow from
    cumulative sums; inside a run the trail is frozen, so the run's end is found in one pass.
    """
    n, pad = len(s), rule.pad
    limits = np.empty(n)
    flags = np.zeros(n, dtype=bool)
    trail, pad_left = state.trail, state.pad_left
    if not rule.exclude:  # thresholds do not depend on flags: one pass, then padding forward
        for lo in range(0, n, CHUNK):
            limits[lo : lo + CHUNK] = _trailing_limits(trail, s[lo : lo + CHUNK], rule)
            trail = np.concatenate([trail, s[lo : lo + CHUNK]])[-rule.trailing :]
        over = s > limits
        pos = np.arange(n)
        last = np.maximum.accumulate(np.where(over, pos, -1 - (pad - pad_left) if pad_left else -(10**12)))
        flags = over | (pos <= last + pad)
        pad_left = max(0, int(last[-1]) + pad - (n - 1)) if n else pad_left
        return limits, flags, trail.copy(), pad_left
    i = 0
    while i < n:
        hi = min(n, i + CHUNK)
        if pad_left > 0:  # inside a run: the threshold is frozen until a row is neither over it nor padded
            limit = _limit(trail, rule)
            pos = np.arange(i, hi)
            over = s[i:hi] > limit
            last = np.maximum.accumulate(np.where(over, pos, i - 1 - (pad - pad_left)))
            free = ~over & (pos > last + pad)
            stop = i + int(np.argmax(free)) if free.any() else hi
            limits[i:stop], flags[i:stop] = limit, True
            pad_left = 0 if stop < hi else pad - (hi - 1 - int(last[-1]))
            i = stop
            continue
        chunk = s[i:hi]
        limit = _trailing_limits(trail, chunk, rule)
        over = chunk > limit
        stop = i + int(np.argmax(over)) if over.any() else hi
        limits[i:stop] = limit[: stop - i]
        trail = np.concatenate([trail, s[i:stop]])[-rule.trailing :]
        if stop < hi:  # the first row over its threshold starts a run
            limits[stop], flags[stop] = limit[stop - i], True
            pad_left = pad
            stop += 1
        i = stop
    return limits, flags, trail.copy(), pad_left


def flag(raw: np.ndarray, rule: TrailingRule, state: FlagState | None = None) -> FlagResult:
    """Score, threshold and flag every row of ``raw`` (per-row mean squared error, NaN in gaps),
    continuing from ``state`` (default: nothing seen; use :func:`seed`). Gaps are skipped: never
    flagged, and they neither count down padding nor enter the trail.

    Works through :data:`BLOCK` rows at a time, each resumed from the previous one's state (the
    property this module guarantees), so memory beyond the three outputs stays small.
    """
    raw = np.asarray(raw, dtype=np.float64)
    state = FlagState() if state is None else state
    score, limits, flags = np.empty(len(raw)), np.full(len(raw), np.nan), np.zeros(len(raw), dtype=bool)
    num, den, trail, pad_left = state.ewm_num, state.ewm_den, state.trail, state.pad_left
    for lo in range(0, len(raw), BLOCK):
        part = slice(lo, lo + BLOCK)
        score[part], num, den = transform(raw[part], rule, num, den)
        finite = np.isfinite(score[part])
        lim, flg, trail, pad_left = _flag_finite(score[part][finite], FlagState(trail=trail, pad_left=pad_left), rule)
        limits[part][finite], flags[part][finite] = lim, flg
    return FlagResult(score, limits, flags, FlagState(num, den, trail, pad_left))
