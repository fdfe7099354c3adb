"""Weather as known at the forecast origin.

A weather driver of the row (origin o, target o + h) is the forecast *issued at o* for o + h, never the weather
observed on o + h: training and prediction read the same thing, and a benchmark gives our model no weather a
retailer would not have. The forecasts come as a neutral frame (``store_id, issue_date, weather_date, rain,
temperature``; the exports' ``rain_mm``/``temperature_c`` are accepted too):
- production: the delivered forecasts (mart ``fct_weather_forecasts``, read by
  ``replenish.forecasting.inputs.mart_weather_forecasts``);
- the generated exports and the simulator: ``Retailer.weather_forecasts``;
- a panel that has only observed weather (the bakery): ``replenish.data.weather.derive_weather_forecasts``, the
  exports' error model applied to the observed series, seeded.
Without forecasts the weather features are missing (NaN) in training and prediction alike.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    import pandas as pd

# neutral name -> the exports' / warehouse name
WEATHER_COLUMNS = {"rain": "rain_mm", "temperature": "temperature_c"}
FORECAST_HORIZON = 14
# a missing delivery: the forecast issued up to this many days before the origin stands in (lead + back <= horizon)
MAX_ISSUE_AGE_DAYS = 2


def neutral_forecasts(wf: pd.DataFrame | None) -> pd.DataFrame | None:
    """The forecasts with neutral column names and datetime64[ns] dates (None stays None)."""
    import pandas as pd

    if wf is None:
        return None
    f = wf.rename(columns={v: k for k, v in WEATHER_COLUMNS.items()})
    return pd.DataFrame({
        "store_id": f["store_id"].to_numpy(np.int64),
        "issue_date": pd.to_datetime(f["issue_date"]).to_numpy().astype("datetime64[ns]"),
        "weather_date": pd.to_datetime(f["weather_date"]).to_numpy().astype("datetime64[ns]"),
        **{c: pd.to_numeric(f[c], errors="coerce").to_numpy(np.float64) if c in f else np.nan
           for c in WEATHER_COLUMNS},
    })


def forecast_arrays(wf: pd.DataFrame | None, store_ids: np.ndarray, dates: pd.DatetimeIndex,
                    horizon: int) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """(row of each series' store, {name: (n_stores, n_dates, horizon) float32}): [r, i, h - 1] is the forecast
    issued on dates[i] for dates[i] + h at store r, NaN where none was issued. Per store, not per series: a chain's
    30,000 series share 200 stores' weather."""
    stores, row = np.unique(np.asarray(store_ids, dtype=np.int64), return_inverse=True)
    shape = (len(stores), len(dates), horizon)
    out = {c: np.full(shape, np.nan, dtype=np.float32) for c in WEATHER_COLUMNS}
    f = neutral_forecasts(wf)
    if f is None or f.empty:
        return row, out
    si = np.searchsorted(stores, f["store_id"].to_numpy())
    di = ((f["issue_date"].to_numpy() - dates[0].to_datetime64()) // np.timedelta64(1, "D")).astype(np.int64)
    lead = ((f["weather_date"].to_numpy() - f["issue_date"].to_numpy()) // np.timedelta64(1, "D")).astype(np.int64)
    ok = ((si < len(stores)) & (stores[np.minimum(si, len(stores) - 1)] == f["store_id"].to_numpy())
          & (di >= 0) & (di < len(dates)) & (lead >= 1) & (lead <= horizon))
    for c in WEATHER_COLUMNS:
        out[c][si[ok], di[ok], lead[ok] - 1] = f[c].to_numpy(np.float32)[ok]
    return row, out


def issued_at_origin(a: np.ndarray, row: np.ndarray, o: np.ndarray, h: int) -> np.ndarray:
    """(n_series, len(o)): the forecast issued at each origin for origin + h; where that delivery is missing, the
    latest issued up to MAX_ISSUE_AGE_DAYS before it (never one issued after the origin)."""
    out = np.full((len(row), len(o)), np.nan)
    for back in range(MAX_ISSUE_AGE_DAYS + 1):
        lead = h + back
        if lead > a.shape[2]:
            break
        i = o - back
        ok = (i >= 0) & (i < a.shape[1])
        vals = np.full((len(row), len(o)), np.nan)
        vals[:, ok] = a[:, i[ok], lead - 1][row]
        out = np.where(np.isnan(out), vals, out)
    return out
