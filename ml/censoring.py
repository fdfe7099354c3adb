"""Demand on stock-out days: sales there are a lower bound, not the demand.

Dropping those days (masking) keeps only the days whose demand stayed below the stock, the low ones: on a panel
where a third of the days sell out, the model learns the demand of ordinary days *given that nothing sold out*,
and every quantile it gives comes out low. In the closed loop that feeds itself: a low forecast orders less, more
days sell out, more high days are dropped.

Here a stock-out day's demand is estimated from its own series, with only data dated at or before that day (a
feature built at origin o reads imputed values of days <= o, so nothing leaks): the last ``weeks`` same weekdays,
a normal demand fitted by EM with the stock-out days as right-censored observations (Tobit), then

- for features, the expected demand given that it exceeded the sales, E[D | D > sales];
- for the training target, one seeded draw from the same truncated distribution, so that the quantile models see
  the spread of the high days and not only their mean.

A window with fewer than ``min_uncensored`` days that did not sell out cannot say how far above the sales the
demand went: the sales are kept as they are there.
"""

from __future__ import annotations

import numpy as np
from scipy.special import ndtr, ndtri

SQRT_2PI = np.sqrt(2 * np.pi)


def _hazard(a: np.ndarray) -> np.ndarray:
    """phi(a) / (1 - Phi(a)), stable in the upper tail (where it tends to a)."""
    tail = ndtr(-a)
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        h = np.exp(-0.5 * a * a) / SQRT_2PI / tail
    return np.where((tail > 1e-12) & np.isfinite(h), h, np.maximum(a, 0) + 1 / np.maximum(np.abs(a), 1))


def _tobit(v: np.ndarray, c: np.ndarray, iters: int) -> tuple[np.ndarray, np.ndarray]:
    """Mean and sd of a normal from observations ``v`` (K, n; NaN missing) of which ``c`` are right-censored."""
    ok = ~np.isnan(v)
    n = ok.sum(axis=0)
    x = np.where(ok, v, 0.0)
    mu = x.sum(axis=0) / np.maximum(n, 1)
    sd = np.sqrt(np.maximum((x * x).sum(axis=0) / np.maximum(n, 1) - mu * mu, 0))
    for _ in range(iters):
        s = np.maximum(sd, np.maximum(0.1 * mu, 0.5))
        a = (x - mu) / s
        lam = _hazard(a)
        e1 = np.where(c, mu + s * lam, x)
        e2 = np.where(c, mu * mu + s * s + s * (x + mu) * lam, x * x)
        e1, e2 = np.where(ok, e1, 0.0), np.where(ok, e2, 0.0)
        mu = e1.sum(axis=0) / np.maximum(n, 1)
        sd = np.sqrt(np.maximum(e2.sum(axis=0) / np.maximum(n, 1) - mu * mu, 0))
    return mu, np.maximum(sd, np.maximum(0.1 * mu, 0.5))


def impute_stockouts(y: np.ndarray, stockout: np.ndarray, *, weeks: int = 8, min_uncensored: int = 3,
                     iters: int = 8, seed: int = 0, chunk: int = 500_000) -> tuple[np.ndarray, np.ndarray]:
    """``y``: observed sales (series, days), NaN where missing; ``stockout``: the day sold out (bool, same shape).
    Returns (for features, for the target): copies of ``y`` with the stock-out days replaced by E[D | D > sales]
    and by a draw from D | D > sales, both at least the sales."""
    feat, target = y.copy(), y.copy()
    cells = np.flatnonzero((stockout & ~np.isnan(y)).ravel())
    if cells.size == 0:
        return feat, target
    T = y.shape[1]
    rng = np.random.default_rng(seed)
    u = rng.random(cells.size)
    for lo in range(0, cells.size, chunk):
        idx = cells[lo:lo + chunk]
        s, t = np.divmod(idx, T)
        back = t[None, :] - 7 * np.arange(weeks)[:, None]          # the day itself and the same weekdays before
        inside = back >= 0
        bb = np.maximum(back, 0)
        v = np.where(inside, y[s[None, :], bb], np.nan)
        c = np.where(inside, stockout[s[None, :], bb], False) & ~np.isnan(v)
        enough = ((~np.isnan(v)) & ~c).sum(axis=0) >= min_uncensored
        mu, sd = _tobit(v, c, iters)
        sales = y[s, t]
        a = (sales - mu) / sd
        mean = mu + sd * _hazard(a)
        # a draw above the sales: the inverse CDF of the truncated normal; capped 3 sd above the mean
        pa = ndtr(a)
        draw = mu + sd * ndtri(np.clip(pa + u[lo:lo + chunk] * (1 - pa), 1e-9, 1 - 1e-9))
        cap = np.maximum(sales, mu + 3 * sd)
        mean = np.where(enough, np.clip(mean, sales, cap), sales)
        draw = np.where(enough & np.isfinite(draw), np.clip(draw, sales, cap), mean)
        feat[s, t], target[s, t] = mean, draw
    return feat, target
