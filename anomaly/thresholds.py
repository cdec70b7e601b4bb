"""Threshold rules: numbers in, a number out. Pure numpy, fitted on held-out normal scores."""

from __future__ import annotations

import numpy as np

from anomaly.errors import ConfigError, DataError

RULES = ("quantile", "ksigma", "max")


def _finite(scores: np.ndarray) -> np.ndarray:
    scores = np.asarray(scores, dtype=np.float64)
    scores = scores[np.isfinite(scores)]
    if len(scores) == 0:
        raise DataError("no finite normal scores to fit a threshold on")
    return scores


def fixed_threshold(value, name: str = "threshold") -> float:
    """``value`` as a threshold given by hand (an option, a jobs file, the dashboard's Save): a real
    number, not a bool, finite and >= 0. One check for every way in, so they accept the same values."""
    number = isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(value, (bool, np.bool_))
    if not (number and np.isfinite(value) and value >= 0):
        raise ConfigError(f"{name} must be a finite number >= 0, not {value!r}")
    return float(value)


def quantile_threshold(scores: np.ndarray, q: float) -> float:
    """The ``q`` quantile of the normal scores: about ``1 - q`` of normal points are flagged."""
    if not 0 < q < 1:
        raise ConfigError(f"quantile must be in (0, 1), not {q}")
    return float(np.quantile(_finite(scores), q))


def ksigma_threshold(scores: np.ndarray, k: float) -> float:
    """Mean + ``k`` standard deviations of the normal scores."""
    if k <= 0:
        raise ConfigError(f"k (sigma multiplier) must be positive, not {k}")
    scores = _finite(scores)
    return float(scores.mean() + k * scores.std())


def max_threshold(scores: np.ndarray, margin: float) -> float:
    """``margin`` times the largest normal score: nothing seen in normal operation is flagged."""
    if margin <= 0:
        raise ConfigError(f"margin must be positive, not {margin}")
    return float(_finite(scores).max() * margin)


def fit_thresholds(scores: np.ndarray, quantile: float, k_sigma: float, rule: str, margin: float = 1.0) -> dict:
    """Every rule's threshold on the same normal scores, and which one is in force."""
    if rule not in RULES:
        raise ConfigError(f"threshold rule must be one of {', '.join(RULES)}, not '{rule}'")
    return {
        "rule": rule,
        "quantile": quantile,
        "k_sigma": k_sigma,
        "margin": margin,
        "values": {
            "quantile": quantile_threshold(scores, quantile),
            "ksigma": ksigma_threshold(scores, k_sigma),
            "max": max_threshold(scores, margin),
        },
        "n_normal_scores": int(np.isfinite(np.asarray(scores, dtype=float)).sum()),
    }


# -- rules fitted on the scored batch itself (relative thresholds) -----------------------------
def dynamic_threshold(
    scores: np.ndarray,
    z_range: tuple[float, float] = (2.5, 12.0),
    z_step: float = 0.5,
    max_sequences: int = 5,
    max_fraction: float = 0.5,
) -> float:
    """telemanom's nonparametric dynamic threshold (Hundman et al., KDD 2018), on one window of scores.

    For each ``z`` it tries ``mean + z*std`` and keeps the one whose removal of the points above it
    lowers the mean and standard deviation most, per point and per sequence flagged (few, short
    sequences preferred). Written here because telemanom is not a maintained library to import.
    """
    scores = _finite(scores)
    mean, std = float(scores.mean()), float(scores.std())
    best_z, best = float(z_range[1]), -np.inf
    if std == 0 or mean == 0:
        return mean + best_z * std
    for z in np.arange(z_range[0], z_range[1] + 1e-9, z_step):
        eps = mean + z * std
        above = scores >= eps
        n_above = int(above.sum())
        if n_above == 0 or n_above >= max_fraction * len(scores):
            continue
        below = scores[~above]
        n_seq = int(np.count_nonzero(np.diff(np.concatenate([[0], above.astype(np.int8)])) == 1))
        gain = (mean - below.mean()) / mean + (std - below.std()) / std
        value = gain / (n_seq**2 + n_above)
        if value >= best and n_seq <= max_sequences:
            best, best_z = value, float(z)
    return mean + best_z * std


def pot_threshold(scores: np.ndarray, risk: float = 1e-3, init_quantile: float = 0.98) -> float:
    """Peaks-over-threshold (extreme value theory, SPOT initialisation of Siffer et al., KDD 2017).

    Fits a generalised Pareto distribution (scipy) to the excesses over the ``init_quantile``
    quantile and returns the score exceeded with probability ``risk``.
    """
    from scipy.stats import genpareto

    if not 0 < risk < 1 or not 0 < init_quantile < 1:
        raise ConfigError(f"POT risk and initial quantile must be in (0, 1), not {risk} and {init_quantile}")
    scores = _finite(scores)
    t = float(np.quantile(scores, init_quantile))
    excess = scores[scores > t] - t
    if len(excess) < 10 or np.ptp(excess) == 0:
        return float(scores.max())
    gamma, _, sigma = genpareto.fit(excess, floc=0)
    ratio = risk * len(scores) / len(excess)
    if abs(gamma) < 1e-8:
        return float(t - sigma * np.log(ratio))
    return float(t + sigma / gamma * (ratio ** (-gamma) - 1))
