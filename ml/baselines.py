"""Baselines on the neutral frame, same (series, origin, horizon) rows as the model.

Both read only data dated <= origin (through ml.features.y_at, the same guard as the model).
Quantiles: empirical P10/P90 of the baseline's own in-sample relative errors over the last 8 weeks.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from ml.config import ForecastConfig
from ml.features import make_grid, y_at

if TYPE_CHECKING:
    import pandas as pd


def _baseline(frame: pd.DataFrame, origins, horizons, k: int) -> pd.DataFrame:
    import warnings

    import pandas as pd

    cfg = ForecastConfig(horizons=list(horizons), mask_stockouts=True)
    grid = make_grid(frame, cfg)
    o = np.array(sorted({grid.date_index(d) for d in origins}), dtype=int)
    S = len(grid.keys)
    out = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        for h in horizons:
            t = o + h
            lag0 = 7 * int(np.ceil(h / 7))
            vals = np.stack([y_at(grid.y, t - lag0 - 7 * j, o) for j in range(k)])
            p50: np.ndarray = np.nanmean(vals, axis=0)
            # fallback: last 7-day mean if the weekday history is missing
            fb = np.nanmean(np.stack([y_at(grid.y, o - j, o) for j in range(7)]), axis=0)
            p50 = np.where(np.isnan(p50), fb, p50)
            out.append(pd.DataFrame({
                "store_id": np.repeat(grid.keys["store_id"].to_numpy(), len(o)),
                "item_id": np.repeat(grid.keys["item_id"].to_numpy(), len(o)),
                "origin": np.tile(grid.dates[o].to_numpy(), S),
                "target_date": np.tile((grid.dates[0] + pd.to_timedelta(t, unit="D")).to_numpy(), S),
                "horizon": h, "p50": p50.ravel(),
                "y": np.where((t < grid.y_raw.shape[1])[None, :], grid.y_raw[:, np.minimum(t, grid.y_raw.shape[1] - 1)],
                              np.nan).ravel(),
            }))
    df = pd.concat(out, ignore_index=True)
    return _empirical_interval(df, frame, k)


def _empirical_interval(df: pd.DataFrame, frame: pd.DataFrame, k: int) -> pd.DataFrame:
    """P10/P90 = p50 x quantiles of y / same-weekday-baseline over the 8 weeks before each origin, per series."""
    import pandas as pd

    f = frame[frame["y"].notna()].sort_values(["store_id", "item_id", "date"]).copy()
    g = f.groupby(["store_id", "item_id"])["y"]
    base = sum(g.shift(7 * (j + 1)) for j in range(k)) / k
    f["r"] = (f["y"] / base).replace([np.inf, -np.inf], np.nan)
    f["date"] = pd.to_datetime(f["date"])
    # rolling 56-day quantiles of the ratio, known at the end of day d (uses only dates <= d)
    rq = {}
    for q in (0.1, 0.9):
        rq[q] = (f.groupby(["store_id", "item_id"])["r"].rolling(56, min_periods=14).quantile(q)
                 .reset_index(level=[0, 1], drop=True))
    f["r10"], f["r90"] = rq[0.1], rq[0.9]
    m = df.merge(f[["store_id", "item_id", "date", "r10", "r90"]].rename(columns={"date": "origin"}),
                 on=["store_id", "item_id", "origin"], how="left")
    m["p10"] = m["p50"] * m["r10"].fillna(0.8)
    m["p90"] = m["p50"] * m["r90"].fillna(1.2)
    return m.drop(columns=["r10", "r90"])


def seasonal_naive(frame: pd.DataFrame, origins, horizons=range(1, 8)) -> pd.DataFrame:
    """Same weekday last week (the last same weekday at or before the origin)."""
    return _baseline(frame, origins, list(horizons), 1)


def mean_last4_same_weekday(frame: pd.DataFrame, origins, horizons=range(1, 8)) -> pd.DataFrame:
    """Mean of the last 4 same weekdays at or before the origin."""
    return _baseline(frame, origins, list(horizons), 4)
