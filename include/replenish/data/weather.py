"""Weather forecasts derived from observed weather: the one error model of the generated exports and the benchmarks.

A forecast issued on day ``o`` for day ``o + k`` (lead k = 1..horizon) is the observed value degraded the way
published verification of medium-range forecasts degrades (station 2 m temperature and daily precipitation):

- temperature: observed + error, error sd = 1.0 + 0.25 k degC (about 1.3 at day 1, 2.8 at day 7, 4.5 at day 14);
  80 % of the error variance is shared by every store on that issue day and lead (a regional forecast misses
  the whole region), 20 % is per store.
- rain: the forecast keeps a share a_k = 0.75 exp(-(k - 1) / 4) of the observed amount (0.75 at day 1, 0.17 at
  day 7, 0.03 at day 14), with a multiplicative log-normal error, and takes the rest from the store's climatology
  known at the issue day (the mean of its last 28 observed days); plus an additive error of sd 0.3 + 0.1 k mm,
  clipped at 0. Skill therefore decays to climatology with lead time, as real precipitation forecasts do.

Seeded: the same ``rng`` state gives the same forecasts.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from ml.weather import FORECAST_HORIZON, WEATHER_COLUMNS

if TYPE_CHECKING:
    import pandas as pd

CLIMATOLOGY_DAYS = 28


def temperature_error_sd(lead: np.ndarray) -> np.ndarray:
    return 1.0 + 0.25 * np.asarray(lead, dtype=float)


def rain_skill(lead: np.ndarray) -> np.ndarray:
    return 0.75 * np.exp(-(np.asarray(lead, dtype=float) - 1.0) / 4.0)


def _trailing_mean(a: np.ndarray, w: int) -> np.ndarray:
    """Mean of a[t-w+1..t] per column, ignoring NaN (the climatology known on day t)."""
    ok = ~np.isnan(a)
    cs = np.concatenate([np.zeros((1, a.shape[1])), np.cumsum(np.where(ok, a, 0.0), axis=0)])
    cn = np.concatenate([np.zeros((1, a.shape[1])), np.cumsum(ok, axis=0)])
    hi = np.arange(1, a.shape[0] + 1)
    lo = np.maximum(hi - w, 0)
    n = cn[hi] - cn[lo]
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(n > 0, (cs[hi] - cs[lo]) / np.maximum(n, 1), np.nan)


def forecast_from_observed(rain: np.ndarray, temp: np.ndarray, rng: np.random.Generator,
                           horizon: int) -> tuple[np.ndarray, np.ndarray]:
    """rain, temp: (T, S) observed per day and store. Returns (rain, temp) forecasts of shape (T, horizon, S):
    [i, k - 1, s] is the forecast issued on day i for day i + k (NaN where i + k is past the last day)."""
    T, S = rain.shape
    H = horizon
    k = np.arange(1, H + 1)[None, :, None]
    tgt = np.arange(T)[:, None] + np.arange(1, H + 1)[None, :]            # (T, H)
    valid = tgt < T
    ti = np.where(valid, tgt, 0)
    obs_r, obs_t = rain[ti], temp[ti]                                     # (T, H, S)
    sd = temperature_error_sd(k)
    z_t = np.sqrt(0.8) * rng.normal(size=(T, H, 1)) + np.sqrt(0.2) * rng.normal(size=(T, H, S))
    f_temp = obs_t + sd * z_t
    a = rain_skill(k)
    clim = _trailing_mean(rain, CLIMATOLOGY_DAYS)[:, None, :]             # known at the issue day
    clim = np.where(np.isnan(clim), np.nanmean(rain) if np.isfinite(rain).any() else 0.0, clim)
    mult = np.exp(0.4 * rng.normal(size=(T, H, 1)) + 0.2 * rng.normal(size=(T, H, S)))
    add = (0.3 + 0.1 * k) * (np.sqrt(0.7) * rng.normal(size=(T, H, 1)) + np.sqrt(0.3) * rng.normal(size=(T, H, S)))
    f_rain = np.clip(a * obs_r * mult + (1 - a) * clim + add, 0.0, None)
    f_temp[~valid] = np.nan
    f_rain[~valid] = np.nan
    return f_rain, f_temp


def derive_weather_forecasts(frame: pd.DataFrame, seed: int = 0, horizon: int = FORECAST_HORIZON) -> pd.DataFrame:
    """Forecasts issued on every date of ``frame`` for the next ``horizon`` days, from its observed weather (one
    value per store and date) with the exports' error model, in ``ml.weather``'s neutral frame: how a panel that has
    only observed weather (the bakery) gets forecasts as issued. Deterministic for a given seed."""
    import pandas as pd

    w = frame.drop_duplicates(["store_id", "date"])[["store_id", "date", *WEATHER_COLUMNS]]
    dates = pd.date_range(pd.to_datetime(w["date"]).min(), pd.to_datetime(w["date"]).max(), freq="D")
    stores = np.sort(w["store_id"].unique())
    wide = {c: w.pivot(index="date", columns="store_id", values=c).reindex(index=dates, columns=stores).to_numpy(float)
            for c in WEATHER_COLUMNS}
    f_rain, f_temp = forecast_from_observed(wide["rain"], wide["temperature"], np.random.default_rng(seed), horizon)
    T, H, S = f_rain.shape
    issue = np.repeat(np.arange(T), H * S)
    lead = np.tile(np.repeat(np.arange(1, H + 1), S), T)
    store = np.tile(stores, T * H)
    ok = issue + lead < T
    return pd.DataFrame({
        "store_id": store[ok].astype(np.int64), "issue_date": dates[issue[ok]],
        "weather_date": dates[(issue + lead)[ok]],
        "rain": np.round(f_rain.ravel()[ok], 1), "temperature": np.round(f_temp.ravel()[ok], 1),
    })
