"""From a per-timestamp anomaly score to flagged rows: smoothing, local thresholds, pruning, padding.

Pure numpy (scipy for POT). These rules judge a score *relative to the scored batch* (Orion's and
telemanom's approach), which is what unsupervised use needs: when a detector is fitted on data that
already holds anomalies, a threshold from "normal" held-out windows is not normal. The price is that
flags depend on the extent of the batch scored (Orion issue #288): score whole periods, not a few rows.

Pipeline (:func:`flag_scores`): optional EWMA smoothing -> threshold per sliding window of the series
(``ksigma``: mean + k*std, Orion; ``dynamic``: telemanom; ``pot``: extreme value theory), a row is
flagged when any window covering it flags it, or when it exceeds a cap set from normal data ->
events pruned when their peak is not clearly above the next one (telemanom) -> events padded on
both sides and merged.

Why the cap (:func:`normal_cap`): a batch-relative threshold cannot flag an anomaly that fills
much of the batch. A sensor stuck at a new level for half of the scored period raises every
window's mean + k*std above its own plateau (SMAP has many such labels). When normal data was
seen at training time, a score several times the largest normal score is anomalous whatever the
rest of the batch looks like.
"""

from __future__ import annotations

import numpy as np

from anomaly import thresholds as thr
from anomaly.errors import ConfigError
from anomaly.events import flagged_runs

LOCAL_RULES = ("ksigma", "dynamic", "pot")


def ewma(score: np.ndarray, span: int) -> np.ndarray:
    """Exponentially weighted moving average over ``span`` rows (pandas, as the detector's own
    ``smoothing``), skipping NaN rows, which stay NaN."""
    score = np.asarray(score, dtype=np.float64)
    if span <= 1:
        return score.copy()
    import pandas as pd  # a well-kept EWMA; pandas is already a core dependency

    out = pd.Series(score).ewm(span=span, ignore_na=True).mean().to_numpy().copy()
    out[~np.isfinite(score)] = np.nan
    return out


def sliding_windows(n: int, size: int, step: int) -> list[tuple[int, int]]:
    """Half-open ``(lo, hi)`` windows of ``size`` rows every ``step`` rows, the last one ending at ``n``."""
    size, step = max(1, min(size, n)), max(1, step)
    starts = list(range(0, n - size + 1, step))
    if not starts or starts[-1] != n - size:
        starts.append(n - size)
    return [(s, s + size) for s in starts]


def window_threshold(values: np.ndarray, rule: str, k: float = 4.0, risk: float = 1e-3) -> float:
    """The threshold of one window of scores under ``rule``."""
    if rule == "ksigma":
        return float(values.mean() + k * values.std())
    if rule == "dynamic":
        return thr.dynamic_threshold(values)
    if rule == "pot":
        return thr.pot_threshold(values, risk=risk)
    raise ConfigError(f"local threshold rule must be one of {', '.join(LOCAL_RULES)}, not '{rule}'")


def local_thresholds(
    score: np.ndarray,
    rule: str = "ksigma",
    *,
    window_frac: float = 1 / 3,
    step_frac: float = 0.1,
    min_window: int = 200,
    k: float = 4.0,
    risk: float = 1e-3,
    floor: float | None = None,
) -> np.ndarray:
    """Per-row threshold: the lowest over the sliding windows covering the row (Orion's local rule).

    Windows span ``window_frac`` of the series (at least ``min_window`` rows) and step by
    ``step_frac`` of it. A row is anomalous if any covering window flags it, i.e. if it exceeds the
    lowest of their thresholds. ``floor`` (e.g. a threshold from normal data) bounds it from below.
    """
    score = np.asarray(score, dtype=np.float64)
    n = len(score)
    out = np.full(n, np.inf)
    size = max(int(round(window_frac * n)), min_window)
    for lo, hi in sliding_windows(n, size, max(1, int(round(step_frac * n)))):
        part = score[lo:hi]
        finite = part[np.isfinite(part)]
        if len(finite) < 2:
            continue
        out[lo:hi] = np.minimum(out[lo:hi], window_threshold(finite, rule, k, risk))
    if floor is not None:
        out = np.maximum(out, floor)
    return out


def normal_cap(normal_scores: np.ndarray, factor: float, root: bool = False) -> float | None:
    """``factor`` times the largest score on normal data, in the units :func:`flag_scores` compares
    (its root with ``root``); None when ``factor`` is 0 or there is no finite normal score.

    With ``root`` the normal scores are smoothed squared errors: the root of their largest is at
    least the largest smoothed root (Jensen), so the cap errs on the high, cautious side.
    """
    normal = np.asarray(normal_scores, dtype=np.float64)
    normal = normal[np.isfinite(normal)]
    if not factor or len(normal) == 0:
        return None
    peak = float(normal.max())
    return float(factor) * (float(np.sqrt(max(peak, 0.0))) if root else peak)


def prune_runs(score: np.ndarray, runs: list[tuple[int, int]], flags: np.ndarray, min_drop: float) -> list[tuple[int, int]]:
    """telemanom's pruning: keep events whose peak stands clearly (``min_drop``, relative) above the next.

    Peaks are sorted in decreasing order with the highest unflagged score appended; scanning down,
    every event after the last drop of at least ``min_drop`` is removed as indistinct from noise.
    """
    if min_drop <= 0 or not runs:
        return runs
    score = np.nan_to_num(np.asarray(score, dtype=np.float64), nan=-np.inf)
    peaks = np.array([score[s : e + 1].max() for s, e in runs])
    rest = score[~flags]
    floor = rest.max() if len(rest) and np.isfinite(rest.max()) else 0.0
    order = np.argsort(-peaks, kind="stable")
    chain = np.concatenate([peaks[order], [floor]])
    keep_upto = 0  # events order[:keep_upto] are kept
    for i in range(len(order)):
        if chain[i] > 0 and (chain[i] - chain[i + 1]) / chain[i] >= min_drop:
            keep_upto = i + 1
    kept = set(order[:keep_upto].tolist())
    return [r for i, r in enumerate(runs) if i in kept]


def pad_runs(runs: list[tuple[int, int]], pad: int, n: int) -> list[tuple[int, int]]:
    """Widen events by ``pad`` rows on each side (inside ``[0, n)``) and merge those that then touch."""
    out: list[list[int]] = []
    for s, e in runs:
        s, e = max(0, s - pad), min(n - 1, e + pad)
        if out and s <= out[-1][1] + 1:
            out[-1][1] = max(out[-1][1], e)
        else:
            out.append([s, e])
    return [(s, e) for s, e in out]


def runs_to_flags(runs: list[tuple[int, int]], n: int) -> np.ndarray:
    flags = np.zeros(n, dtype=bool)
    for s, e in runs:
        flags[s : e + 1] = True
    return flags


def flag_scores(
    score: np.ndarray,
    *,
    rule: str | None = "ksigma",
    smoothing: int = 0,
    window_frac: float = 1 / 3,
    step_frac: float = 0.1,
    min_window: int = 200,
    k: float = 4.0,
    risk: float = 1e-3,
    floor: float | None = None,
    cap: float | None = None,
    prune: float = 0.0,
    pad: int = 0,
    merge_gap: int = 0,
    min_length: int = 1,
    root: bool = False,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Smoothed score, per-row threshold and final flags of a batch of scores (see module doc).

    ``root=True`` takes the square root of the score first (squared errors -> RMS errors, whose
    tails are less heavy, so mean + k*std is less dominated by one burst). ``rule=None`` uses the
    fixed threshold ``floor`` (in the units of the score given, e.g. learned on normal data) for
    every row, then prunes and pads like the local rules. ``cap`` (see :func:`normal_cap`) bounds a
    local rule's threshold from above: rows over it are flagged whatever the batch (the fixed rule
    ignores it).
    """
    score = np.asarray(score, dtype=np.float64)
    if root:
        with np.errstate(invalid="ignore"):
            score = np.sqrt(np.maximum(score, 0.0) if np.isfinite(score).any() else score)
    smooth = ewma(score, smoothing)
    if rule is None:
        if floor is None:
            raise ConfigError("the fixed rule needs a threshold (floor)")
        limit = np.full(len(smooth), float(floor))
    else:
        limit = local_thresholds(
            smooth, rule, window_frac=window_frac, step_frac=step_frac, min_window=min_window, k=k, risk=risk, floor=floor
        )
        if cap is not None:
            limit = np.minimum(limit, cap)
    raw = np.nan_to_num(smooth, nan=-np.inf) > limit
    runs = flagged_runs(raw, merge_gap, min_length)
    runs = prune_runs(smooth, runs, raw, prune)
    runs = pad_runs(runs, pad, len(smooth))
    return smooth, limit, runs_to_flags(runs, len(smooth))


def events_from_flags(
    index,
    score: np.ndarray,
    threshold: np.ndarray,
    flags: np.ndarray,
    contributions: np.ndarray,
    sensors: list[str],
    *,
    merge_gap: int = 0,
    min_length: int = 1,
):
    """Events (as :func:`anomaly.events.find_events`) from final flags and per-row thresholds.

    Runs of flags at most ``merge_gap`` rows apart are one event; runs shorter than ``min_length``
    are none. Severity is the peak score over the threshold in force at the peak.
    """

    from anomaly.events import events_frame, top_sensors

    score = np.asarray(score, dtype=np.float64)
    rows = []
    for s, e in flagged_runs(flags, merge_gap, min_length):
        part = np.nan_to_num(score[s : e + 1], nan=-np.inf)
        at = s + int(np.argmax(part))
        peak, limit = float(score[at]), float(threshold[at])
        rows.append(
            {
                "start": index[s],
                "end": index[e],
                "peak_score": peak,
                "severity": peak / limit if np.isfinite(limit) and limit > 0 else np.inf,
                "sensors": ";".join(top_sensors(contributions[s : e + 1], sensors)),
            }
        )
    return events_frame(rows, index)
