"""Quantile for a service level from the forecast's P10/P50/P90.

Interpolation is done in standard-normal z space: q(s) = P50 + (P90-P50) * z(s)/z(0.9) for s >= 0.5 and
q(s) = P50 - (P50-P10) * z(1-s)/z(0.9) for s < 0.5. It hits P10/P50/P90 exactly at 0.1/0.5/0.9,
is monotone, allows asymmetric intervals, and extrapolates beyond P90 (service levels 0.95, 0.98...) with
a normal tail instead of silently clamping at P90. Levels are clipped to [0.01, 0.995]. Result >= 0.
"""

from __future__ import annotations

from statistics import NormalDist

import numpy as np

Z90 = NormalDist().inv_cdf(0.9)
LEVEL_MIN, LEVEL_MAX = 0.01, 0.995


def level_weight(levels: np.ndarray) -> np.ndarray:
    """Signed weight w(s) = z(s)/z(0.9) (vectorised over the distinct levels)."""
    lv = np.clip(np.asarray(levels, dtype="float64"), LEVEL_MIN, LEVEL_MAX)
    lv = np.round(lv, 4)
    uniq, inv = np.unique(lv, return_inverse=True)
    nd = NormalDist()
    w = np.array([nd.inv_cdf(float(u)) / Z90 for u in uniq])
    return w[inv]


def quantile_from_weight(p10, p50, p90, w) -> np.ndarray:
    p10, p50, p90, w = (np.asarray(a, dtype="float64") for a in (p10, p50, p90, w))
    q = np.where(w >= 0, p50 + w * (p90 - p50), p50 + w * (p50 - p10))
    return np.maximum(q, 0.0)


def quantile(p10, p50, p90, level) -> np.ndarray:
    return quantile_from_weight(p10, p50, p90, level_weight(np.atleast_1d(level)))


# Correlation of the forecast errors of a window's days when the model has not measured it (ml.calibration
# day_error_correlation, from its backtest). Summing daily quantiles assumes 1 (every day misses the same way),
# which makes a 5-day window's P90 as extreme as five P90 days in a row; independence (0) is too optimistic for
# demand that shares weather and events.
DAY_ERROR_CORRELATION = 0.5


def _window_spread(li: np.ndarray, n: int, p10, p50, p90, rho: float):
    """Window median and its spread below and above (normal z-scale) from the days' P10/P50/P90, the days
    correlated with ``rho``: sd_window = sqrt((1 - rho) * sum(sd^2) + rho * sum(sd)^2), separately per side."""
    p10, p50, p90 = (np.maximum(np.asarray(a, dtype="float64"), 0) for a in (p10, p50, p90))
    lo, hi = np.maximum(p50 - p10, 0) / Z90, np.maximum(p90 - p50, 0) / Z90
    med = np.bincount(li, weights=p50, minlength=n)

    def sd(s: np.ndarray) -> np.ndarray:
        s1, s2 = np.bincount(li, weights=s, minlength=n), np.bincount(li, weights=s * s, minlength=n)
        return np.sqrt(np.maximum((1 - rho) * s2 + rho * s1 * s1, 0))

    return med, sd(lo), sd(hi)


def window_quantiles(li: np.ndarray, n: int, p10, p50, p90, rho: float = DAY_ERROR_CORRELATION):
    """P10, P50, P90 of the demand summed over each line's days (``li``: the line of each daily row; ``n`` lines)."""
    med, lo, hi = _window_spread(li, n, p10, p50, p90, rho)
    return np.maximum(med - Z90 * lo, 0), med, med + Z90 * hi


def window_quantile(li: np.ndarray, n: int, p10, p50, p90, w: np.ndarray, rho: float = DAY_ERROR_CORRELATION):
    """The demand summed over each line's days at the line's level (``w``: :func:`level_weight` per line); for a
    one-day window it is that day's :func:`quantile`."""
    med, lo, hi = _window_spread(li, n, p10, p50, p90, rho)
    w = np.asarray(w, dtype="float64")
    return np.maximum(np.where(w >= 0, med + w * Z90 * hi, med + w * Z90 * lo), 0.0)
