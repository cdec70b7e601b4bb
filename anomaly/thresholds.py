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
